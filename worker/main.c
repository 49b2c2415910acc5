/*
 * worker/main.c - placeholder main until its issue lands.
 */
#include <stdio.h>

int
main(void)
{
    printf("%s %s\n", "worker/main", WQ_VERSION);
    return 0;
}
