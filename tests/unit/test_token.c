/*
 * test_token.c - bearer tokens: generated tokens, their sha256 entries
 * (checked against a known SHA-256 vector), scopes, the tokens file
 * parser with its errors, plaintext lines, and the check.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/stat.h>

#include "wq_test.h"
#include "log.h"
#include "token.h"

/* SHA-256("abc"), FIPS 180-2 appendix B.1 */
#define ABC_SHA256 \
    "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"

static void
test_token_entry_known_vector(void **state)
{
    char e[WQ_TOKEN_ENTRY_LEN];

    (void)state;
    assert_int_equal(wq_token_entry("abc", 3, e), 0);
    assert_string_equal(e, ABC_SHA256);
    assert_int_equal(wq_token_entry("", 0, e), WQ_EINVAL);
    assert_int_equal(wq_token_entry("a b", 3, e), WQ_EINVAL);
    assert_int_equal(wq_token_entry("a\x01", 2, e), WQ_EINVAL);
    assert_int_equal(wq_token_entry("\xc3\xa9", 2, e), WQ_EINVAL);
}

static void
test_token_generate_is_random_and_valid(void **state)
{
    char a[WQ_TOKEN_NEW_LEN], b[WQ_TOKEN_NEW_LEN], e[WQ_TOKEN_ENTRY_LEN];

    (void)state;
    assert_int_equal(wq_token_generate(a), 0);
    assert_int_equal(wq_token_generate(b), 0);
    assert_int_equal(strlen(a), WQ_TOKEN_NEW_LEN - 1);
    assert_memory_equal(a, "wq_", 3);
    assert_string_not_equal(a, b);
    /* base64url: no '+', '/' or '=' */
    assert_int_equal(strspn(a + 3, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklm"
        "nopqrstuvwxyz0123456789-_"), 43);
    assert_int_equal(wq_token_entry(a, strlen(a), e), 0);
}

static void
test_token_scopes(void **state)
{
    char err[WQ_ERRLEN], buf[64];
    unsigned s;

    (void)state;
    assert_int_equal(wq_token_scopes_parse("submit", &s, err, sizeof err),
        0);
    assert_int_equal(s, WQ_TOKEN_SCOPE_SUBMIT);
    assert_int_equal(wq_token_scopes_parse("READ,submit", &s, err,
        sizeof err), 0);
    assert_int_equal(s, WQ_TOKEN_SCOPES_DEFAULT);
    assert_string_equal(wq_token_scopes_text(s, buf, sizeof buf),
        "submit,read");
    assert_int_equal(wq_token_scopes_parse("admin", &s, err, sizeof err), 0);
    assert_int_equal(s, WQ_TOKEN_SCOPES_ALL);
    assert_string_equal(wq_token_scopes_text(s, buf, sizeof buf), "admin");
    assert_int_equal(wq_token_scopes_parse("read,write", &s, err,
        sizeof err), WQ_EINVAL);
    assert_non_null(strstr(err, "'write'"));
    assert_int_equal(wq_token_scopes_parse("", &s, err, sizeof err),
        WQ_EINVAL);
    assert_int_equal(wq_token_scopes_parse("read,", &s, err, sizeof err),
        WQ_EINVAL);
}

static void
test_token_file_and_check(void **state)
{
    static const char text[] =
        "# tokens\n"
        "\n"
        ABC_SHA256 " submit   # ci\n"
        "   SHA256-is-not-a-prefix-so-this-is-plaintext read\r\n"
        "legacy-plain-token\n"
        "\t" "sha256:BA7816BF8F01CFEA414140DE5DAE2223"
        "B00361A396177A9CB410FF61F20015AD admin\n"
        "sha256:00000000000000000000000000000000"
        "00000000000000000000000000000001";
    char err[WQ_ERRLEN];
    wq_tokens *t;

    (void)state;
    assert_int_equal(wq_tokens_parse(text, strlen(text), "f", &t, err,
        sizeof err), 0);
    assert_int_equal(wq_tokens_count(t), 5);
    assert_int_equal(wq_tokens_plaintext(t), 2);
    /* "abc" matches two lines: their scopes add up */
    assert_int_equal(wq_tokens_check(t, "abc", 3), WQ_TOKEN_SCOPES_ALL);
    assert_int_equal(wq_tokens_check(t,
        "SHA256-is-not-a-prefix-so-this-is-plaintext", 43),
        WQ_TOKEN_SCOPE_READ);
    assert_int_equal(wq_tokens_check(t, "legacy-plain-token", 18),
        WQ_TOKEN_SCOPES_DEFAULT);
    assert_int_equal(wq_tokens_check(t, "legacy-plain-toke", 17), 0);
    assert_int_equal(wq_tokens_check(t, "legacy-plain-tokenx", 19), 0);
    assert_int_equal(wq_tokens_check(t, "", 0), 0);
    assert_int_equal(wq_tokens_check(t, NULL, 0), 0);
    /* the stored hash is not itself a token */
    assert_int_equal(wq_tokens_check(t, ABC_SHA256, strlen(ABC_SHA256)), 0);
    assert_int_equal(wq_tokens_check(NULL, "abc", 3), 0);
    wq_tokens_free(t);

    /* empty file: no token at all */
    assert_int_equal(wq_tokens_parse("", 0, "f", &t, err, sizeof err), 0);
    assert_int_equal(wq_tokens_count(t), 0);
    assert_int_equal(wq_tokens_check(t, "abc", 3), 0);
    wq_tokens_free(t);
}

static void
test_token_file_errors_name_lines(void **state)
{
    static const char text[] =
        "good-token\n"
        "sha256:abc\n"                          /* line 2: short */
        "sha256:zz7816bf8f01cfea414140de5dae2223"
        "b00361a396177a9cb410ff61f20015ad\n"
        "tok read,fly\n"                        /* line 4: scope */
        "tok read extra\n"                      /* line 5: text after */
        "tok\x7f\n"                             /* line 6: control char */
        "tok read # fine\n";
    char err[2048];
    wq_tokens *t = (wq_tokens *)1;

    (void)state;
    assert_int_equal(wq_tokens_parse(text, strlen(text), "tokens.txt", &t,
        err, sizeof err), WQ_EINVAL);
    assert_null(t);
    assert_non_null(strstr(err, "tokens.txt:2: sha256: must be followed"));
    assert_non_null(strstr(err, "tokens.txt:3: sha256:"));
    assert_non_null(strstr(err, "tokens.txt:4: unknown scope 'fly'"));
    assert_non_null(strstr(err, "tokens.txt:5: unexpected text"));
    assert_non_null(strstr(err, "tokens.txt:6: a token is"));
    assert_null(strstr(err, ":1:"));
    assert_null(strstr(err, ":7:"));
    /* an error never repeats a token's text */
    assert_null(strstr(err, "good-token"));

    assert_int_equal(wq_tokens_parse("a\0b\n", 4, "z", &t, err, sizeof err),
        WQ_EINVAL);
    assert_non_null(strstr(err, "z:1: a NUL byte"));
}

static void
test_token_load_file(void **state)
{
    char err[WQ_ERRLEN], e[WQ_TOKEN_ENTRY_LEN];
    wq_tokens *t;
    FILE *f;

    (void)state;
    assert_int_equal(wq_tokens_load("nonexistent", &t, err, sizeof err),
        WQ_EIO);
    assert_non_null(strstr(err, "nonexistent"));
    assert_int_equal(wq_token_entry("tok-1", 5, e), 0);
    f = fopen("tokens", "w");
    assert_non_null(f);
    /* more than one read buffer's worth of lines */
    for (int i = 0; i < 200; i++)
        fprintf(f, "# filler line %d ......................................\n",
            i);
    fprintf(f, "%s submit,read # the one\n", e);
    fclose(f);
    assert_int_equal(wq_tokens_load("tokens", &t, err, sizeof err), 0);
    assert_int_equal(wq_tokens_count(t), 1);
    assert_int_equal(wq_tokens_plaintext(t), 0);
    assert_int_equal(wq_tokens_check(t, "tok-1", 5), WQ_TOKEN_SCOPES_DEFAULT);
    wq_tokens_free(t);
}

/* A tokens file others may write is refused; one they may read loads
 * with a warning (at start and at every reload: the same function). */
static void
test_token_file_permissions(void **state)
{
    char err[WQ_ERRLEN], e[WQ_TOKEN_ENTRY_LEN], log[4096];
    wq_tokens *t = NULL;
    FILE *f;
    size_t n;

    (void)state;
    assert_int_equal(wq_log_setup("t", WQ_LOG_INFO, WQ_LOG_TEXT, "t.log",
        err, sizeof err), 0);
    assert_int_equal(wq_token_entry("tok-1", 5, e), 0);
    f = fopen("tokens", "w");
    assert_non_null(f);
    fprintf(f, "%s submit\n", e);
    fclose(f);

    assert_int_equal(chmod("tokens", 0666), 0);
    assert_int_equal(wq_tokens_load("tokens", &t, err, sizeof err),
        WQ_ECONFIG);
    assert_null(t);
    if (strstr(err, "tokens is writable by others (mode 0666)") == NULL)
        fail_msg("%s", err);

    assert_int_equal(chmod("tokens", 0644), 0);
    assert_int_equal(wq_tokens_load("tokens", &t, err, sizeof err), 0);
    wq_tokens_free(t);
    assert_int_equal(chmod("tokens", 0640), 0);
    assert_int_equal(wq_tokens_load("tokens", &t, err, sizeof err), 0);
    wq_tokens_free(t);
    f = fopen("t.log", "r");
    assert_non_null(f);
    n = fread(log, 1, sizeof log - 1, f);
    log[n] = '\0';
    fclose(f);
    /* one warning: 0644, not 0640 */
    if (strstr(log, "tokens is readable by others (mode 0644)") == NULL
        || strstr(log, "0640") != NULL)
        fail_msg("%s", log);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_token_entry_known_vector),
    cmocka_unit_test(test_token_file_permissions),
    cmocka_unit_test(test_token_generate_is_random_and_valid),
    cmocka_unit_test(test_token_scopes),
    cmocka_unit_test(test_token_file_and_check),
    cmocka_unit_test(test_token_file_errors_name_lines),
    cmocka_unit_test(test_token_load_file),
};

WQ_TEST_MAIN("token", tests)
