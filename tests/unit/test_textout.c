/*
 * test_textout.c - unit tests of shared/textout.c: what reaches an
 * operator's terminal holds no control byte, C1 control, bidi control
 * or invalid UTF-8; previews cut with a note; bytes in JSON are a string
 * when UTF-8 and base64 otherwise.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wq_test.h"

#include "textout.h"

/* The escape of n bytes at p as a NUL-terminated string (static). */
static const char *
esc(const char *p, size_t n, size_t max)
{
    static char out[4096];
    struct wq_buf b = WQ_BUF_INIT;
    long used = wq_text_escape(&b, p, n, max);

    assert_true(used >= 0);
    assert_true(b.len < sizeof out);
    memcpy(out, b.data != NULL ? b.data : "", b.len);
    out[b.len] = '\0';
    wq_buf_free(&b);
    return out;
}

#define ESC(lit) esc(lit, sizeof lit - 1, 0)

/* No byte of s is a C0 control, DEL, or the start of a C1 control. */
static void
assert_terminal_safe(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p < 0x20 || *p == 0x7f)
            fail_msg("control byte 0x%02x in '%s'", *p, s);
        if (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f)
            fail_msg("C1 control in '%s'", s);
    }
    assert_true(wq_text_is_utf8(s, strlen(s)));
}

static void
test_text_escape_controls(void **state)
{
    (void)state;
    assert_string_equal(ESC("plain text, ünïcödé ✓"), "plain text, ünïcödé ✓");
    assert_string_equal(ESC("a\nb\rc\td"), "a\\nb\\rc\\td");
    assert_string_equal(ESC("\x1b[31mred\x1b[0m"), "\\e[31mred\\e[0m");
    assert_string_equal(ESC("nul\0bel\a del\x7f"), "nul\\x00bel\\x07 del\\x7f");
    /* C1 as UTF-8 code points: NEL U+0085, CSI U+009B */
    assert_string_equal(ESC("x\xc2\x85y\xc2\x9b"), "x\\u0085y\\u009b");
    /* bidi override, line separator, BOM */
    assert_string_equal(ESC("\xe2\x80\xae\xe2\x80\xa8\xef\xbb\xbf"),
        "\\u202e\\u2028\\ufeff");
    /* not UTF-8: raw C1 bytes, a stray continuation, an overlong, a
     * surrogate, a cut sequence */
    assert_string_equal(ESC("\x9b\x85"), "\\x9b\\x85");
    assert_string_equal(ESC("\xc0\xaf"), "\\xc0\\xaf");
    assert_string_equal(ESC("\xed\xa0\x80"), "\\xed\\xa0\\x80");
    assert_string_equal(ESC("ok\xe2\x82"), "ok\\xe2\\x82");
    /* the backslash stays as it is */
    assert_string_equal(ESC("C:\\dir"), "C:\\dir");
}

static void
test_text_escape_every_byte_is_safe(void **state)
{
    char in[256 * 3], *s;

    (void)state;
    for (int i = 0; i < 256; i++) {
        in[i] = (char)i;
        /* every two-byte sequence starting with 0xc2, C1 included */
        in[256 + i] = (char)0xc2;
        in[512 + i] = (char)(0x80 + i % 64);
    }
    assert_terminal_safe(esc(in, sizeof in, 0));
    in[5] = '\0';
    s = wq_text_escape_str("line1\nline2\x1b]0;title\a", 0);
    assert_non_null(s);
    assert_terminal_safe(s);
    assert_string_equal(s, "line1\\nline2\\e]0;title\\x07");
    free(s);
    assert_null(wq_text_escape_str(NULL, 0));
}

static void
test_text_escape_max(void **state)
{
    char *s;

    (void)state;
    /* an escape or a character that does not fit is not started */
    assert_string_equal(esc("abc\ndef", 7, 4), "abc");
    assert_string_equal(esc("abc\ndef", 7, 5), "abc\\n");
    assert_string_equal(esc("ab\xc3\xa9", 4, 3), "ab");
    s = wq_text_escape_str("0123456789", 4);
    assert_string_equal(s, "0123...");
    free(s);
    s = wq_text_escape_str("0123", 4);
    assert_string_equal(s, "0123");
    free(s);
}

static void
test_text_utf8(void **state)
{
    (void)state;
    assert_true(wq_text_is_utf8("", 0));
    assert_true(wq_text_is_utf8("a\0b", 3));
    assert_true(wq_text_is_utf8("\xf0\x9f\x98\x80", 4));
    assert_false(wq_text_is_utf8("\xf4\x90\x80\x80", 4));  /* > U+10FFFF */
    assert_false(wq_text_is_utf8("\xe0\x80\x80", 3));      /* overlong */
    assert_false(wq_text_is_utf8("\xff", 1));
}

static const char *
preview(const char *p, size_t n, size_t max)
{
    static char out[4096];
    struct wq_buf b = WQ_BUF_INIT;

    assert_int_equal(wq_text_preview(&b, p, n, 0, max, 0), 0);
    memcpy(out, b.data != NULL ? b.data : "", b.len);
    out[b.len] = '\0';
    wq_buf_free(&b);
    return out;
}

static void
test_text_preview(void **state)
{
    char big[3000];

    (void)state;
    assert_string_equal(preview("{\"to\":\"a\"}", 10, 1024), "{\"to\":\"a\"}");
    assert_string_equal(preview("a\nb", 3, 1024), "a\\nb");
    assert_string_equal(preview("\x00\x01\xff", 3, 1024), "hex: 00 01 ff");
    memset(big, 'x', sizeof big);
    assert_string_equal(preview(big, sizeof big, 16),
        "xxxxxxxxxxxxxxxx ... (3000 bytes, truncated; --json for all)");
    big[0] = (char)0xff;
    assert_string_equal(preview(big, sizeof big, 16),
        "hex: ff 78 78 78 ... (3000 bytes, truncated; --json for all)");
}

static void
test_text_preview_of_a_cut_copy(void **state)
{
    struct wq_buf b = WQ_BUF_INIT;

    (void)state;
    /* the first 5 of 9 bytes, cut inside the "é": text, not hex */
    assert_int_equal(wq_text_preview(&b, "abc\xc3\xa9" "def", 4, 9, 40,
        WQ_TEXT_SHORT), 0);
    assert_int_equal(wq_buf_append(&b, "", 1), 0);
    assert_string_equal(b.data, "abc...");
    wq_buf_reset(&b);
    assert_int_equal(wq_text_preview(&b, "abcdef", 6, 9, 40, 0), 0);
    assert_int_equal(wq_buf_append(&b, "", 1), 0);
    assert_string_equal(b.data,
        "abcdef ... (9 bytes, truncated; --json for all)");
    wq_buf_free(&b);
}

static void
test_text_json_bytes(void **state)
{
    json_t *o = json_object();
    char *s;

    (void)state;
    assert_int_equal(wq_text_json_set_bytes(o, "result", "ok\n", 3), 0);
    assert_int_equal(wq_text_json_set_bytes(o, "payload", "\x00\x01\xff",
        3), 0);
    assert_int_equal(wq_text_json_set_bytes(o, "empty", "", 0), 0);
    s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(s, "{\"empty\":\"\",\"payload_base64\":\"AAH/\","
        "\"result\":\"ok\\n\"}");
    free(s);
    json_decref(o);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_text_escape_controls),
    cmocka_unit_test(test_text_escape_every_byte_is_safe),
    cmocka_unit_test(test_text_escape_max),
    cmocka_unit_test(test_text_utf8),
    cmocka_unit_test(test_text_preview),
    cmocka_unit_test(test_text_preview_of_a_cut_copy),
    cmocka_unit_test(test_text_json_bytes),
};

WQ_TEST_MAIN("textout", tests)
