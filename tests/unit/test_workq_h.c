/*
 * test_workq_h.c - the public header shared/workq.h is what a user's
 * program includes, and nothing else: it compiles first and alone, it
 * pulls in no internal header, its error codes agree with wq.h, and the
 * client refuses bad arguments with codes, never by crashing.  No server.
 */
#include "workq.h"          /* first, alone: self-contained */

#ifdef WQ_H
#error "workq.h must not include workq's internal headers"
#endif

#include <string.h>

#include "wq.h"             /* same codes: an identical redefinition */
#include "wq_test.h"

static void
test_workq_h_codes(void **state)
{
    (void)state;
    assert_int_equal(WQ_OK, 0);
    assert_int_equal(WQ_EBROKER, -5);
    assert_int_equal(WQ_ECLOSED, -13);
    assert_int_equal(WQ_CLIENT_ID_LEN, 37);
    assert_string_equal(wq_strerror(WQ_ENACK), "rejected by broker");
}

static void
test_workq_h_null_arguments(void **state)
{
    struct wq_client_task t = { .queue = "q", .type = "t" };
    struct wq_client_result r;
    char err[WQ_ERRLEN], id[WQ_CLIENT_ID_LEN] = "x";

    (void)state;
    assert_int_equal(wq_client_submit(NULL, &t, id, err, sizeof err),
        WQ_EINVAL);
    assert_string_equal(id, "");
    assert_int_equal(wq_client_submit_batch(NULL, &t, 1, &r, err,
        sizeof err), WQ_EINVAL);
    assert_int_equal(wq_client_submit_async(NULL, &t, NULL, NULL, NULL,
        err, sizeof err), WQ_EINVAL);
    assert_int_equal(wq_client_flush(NULL, 0, NULL, 0), WQ_EINVAL);
    assert_int_equal(wq_client_open_config(NULL, (wq_client **)&r, err,
        sizeof err), WQ_EINVAL);
    wq_client_free(NULL);
}

static void
test_workq_h_bad_conf(void **state)
{
    struct wq_client_conf conf = { .transport = "pigeon" };
    char err[WQ_ERRLEN];
    wq_client *c = NULL;

    (void)state;
    assert_int_equal(wq_client_open_conf(&conf, &c, err, sizeof err),
        WQ_ECONFIG);
    assert_null(c);
    assert_non_null(strstr(err, "pigeon"));
    conf.transport = "rabbitmq";
    conf.rabbitmq_queue_type = "lazy";
    assert_int_equal(wq_client_open_conf(&conf, &c, err, sizeof err),
        WQ_ECONFIG);
    conf.rabbitmq_queue_type = NULL;
    conf.kafka_partitions = 5000;
    assert_int_equal(wq_client_open_conf(&conf, &c, err, sizeof err),
        WQ_ECONFIG);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_workq_h_codes),
    cmocka_unit_test(test_workq_h_null_arguments),
    cmocka_unit_test(test_workq_h_bad_conf),
};

WQ_TEST_MAIN("workq_h", tests)
