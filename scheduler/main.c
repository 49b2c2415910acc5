/*
 * scheduler/main.c - placeholder main until its issue lands.
 */
#include <stdio.h>

int
main(void)
{
    printf("%s %s\n", "scheduler/main", WQ_VERSION);
    return 0;
}
