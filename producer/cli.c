/*
 * producer/cli.c - placeholder main until its issue lands.
 */
#include <stdio.h>

int
main(void)
{
    printf("%s %s\n", "producer/cli", WQ_VERSION);
    return 0;
}
