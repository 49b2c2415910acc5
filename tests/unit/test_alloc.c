/*
 * test_alloc.c - the aborting allocators' results, and wq_alloc_keep_heap:
 * memory freed at the top of malloc's heap stays there for the next
 * allocation instead of going back to the kernel (glibc's default gives
 * back all but 128 kB).  It needs glibc's allocator: ASan's ignores
 * mallopt(3), so the case exists only in the plain build, and under
 * valgrind, whose malloc ignores it too, the case fails.
 */
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "wq_test.h"
#include "alloc.h"

static void
test_alloc_copies(void **state)
{
    char *s, *t, *f;
    unsigned char *m;

    (void)state;
    s = xstrndup("abcdef", 3);
    assert_string_equal(s, "abc");
    t = xstrndup("ab", 10);
    assert_string_equal(t, "ab");
    m = xmemdup("\0\1\2", 3);
    assert_memory_equal(m, "\0\1\2", 3);
    f = xasprintf("%s-%d", "q", 42);
    assert_string_equal(f, "q-42");
    free(s);
    free(t);
    free(m);
    free(f);
}

#if !defined(__SANITIZE_ADDRESS__)
#define BLOCKS 96
#define BLOCK  (16u << 10)      /* below the mmap threshold: from the heap */

static void
test_alloc_keep_heap_keeps_freed_top(void **state)
{
    void *p[BLOCKS];
    struct mallinfo2 mi;

    (void)state;
    wq_alloc_keep_heap();
    for (int i = 0; i < BLOCKS; i++)
        p[i] = xmalloc(BLOCK);
    for (int i = BLOCKS - 1; i >= 0; i--)
        free(p[i]);
    /* keepcost: the free top that malloc_trim(0) could give back */
    mi = mallinfo2();
    print_message("top of the heap after freeing %u kB: %zu kB\n",
        BLOCKS * BLOCK >> 10, mi.keepcost >> 10);
    assert_true(mi.keepcost >= (size_t)BLOCKS * BLOCK - BLOCK);
    assert_true(mi.keepcost <= WQ_ALLOC_KEEP + BLOCK);
}
#endif

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_alloc_copies),
#if !defined(__SANITIZE_ADDRESS__)
    cmocka_unit_test(test_alloc_keep_heap_keeps_freed_top),
#endif
};

WQ_TEST_MAIN("alloc", tests)
