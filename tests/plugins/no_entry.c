/*
 * no_entry.c - a shared object that is not a workq plugin (no
 * workq_plugin_entry), which the worker must refuse at load.
 */
int not_a_plugin(void);

int
not_a_plugin(void)
{
    return 42;
}
