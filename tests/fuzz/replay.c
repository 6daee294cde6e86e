/* replay.c - the libFuzzer harnesses of tests/fuzz/ (fuzz_*.c) without
 * libFuzzer: every file of the folders or files given (by default
 * tests/fuzz/seeds and tests/fuzz/regressions) goes once through every
 * harness.  `make check` runs it (build/fuzz_replay, and under ASan and
 * UBSan build/asan/fuzz_replay), so that every seed and every input that
 * ever failed is replayed by each harness's own checks; a harness that finds
 * a rule broken aborts.  The Makefile compiles each harness with its entry
 * point renamed fuzz_one_NAME and lists them in harnesses.h (HARNESSES). */
#define _GNU_SOURCE
#include "harnesses.h"

#include <glib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define H(n) int fuzz_one_##n(const uint8_t *data, size_t size);
HARNESSES
#undef H

typedef struct {
    const char *name;
    int (*one)(const uint8_t *data, size_t size);
} harness;

static const harness harnesses[] = {
#define H(n) {#n, fuzz_one_##n},
    HARNESSES
#undef H
};

static gint by_name(gconstpointer a, gconstpointer b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* the files of path (a file, or the files in a folder), sorted */
static void add_files(GPtrArray *files, const char *path)
{
    GDir *d = g_dir_open(path, 0, NULL);
    if (!d) {
        if (g_file_test(path, G_FILE_TEST_IS_REGULAR))
            g_ptr_array_add(files, g_strdup(path));
        return;
    }
    GPtrArray *here = g_ptr_array_new();
    const char *n;
    while ((n = g_dir_read_name(d)))
        if (n[0] != '.')
            g_ptr_array_add(here, g_build_filename(path, n, NULL));
    g_dir_close(d);
    g_ptr_array_sort(here, by_name);
    for (guint i = 0; i < here->len; i++) {
        char *p = g_ptr_array_index(here, i);
        if (g_file_test(p, G_FILE_TEST_IS_REGULAR))
            g_ptr_array_add(files, p);
        else
            g_free(p);
    }
    g_ptr_array_free(here, TRUE);
}

int main(int argc, char **argv)
{
    GPtrArray *files = g_ptr_array_new_with_free_func(g_free);
    if (argc > 1) {
        for (int i = 1; i < argc; i++)
            add_files(files, argv[i]);
    } else {
        add_files(files, "tests/fuzz/seeds");
        add_files(files, "tests/fuzz/regressions");
        add_files(files, "tests/fuzz/seeds-guest");
        add_files(files, "tests/fuzz/regressions-guest");
    }
    unsigned done = 0, failed = 0;
    for (guint i = 0; i < files->len; i++) {
        const char *f = g_ptr_array_index(files, i);
        gchar *data;
        gsize len;
        if (!g_file_get_contents(f, &data, &len, NULL)) {
            fprintf(stderr, "cannot read %s\n", f);
            failed++;
            continue;
        }
        for (size_t k = 0; k < G_N_ELEMENTS(harnesses); k++) {
            printf("%s %s\n", harnesses[k].name, f);
            fflush(stdout);
            harnesses[k].one((const uint8_t *)data, len);
            done++;
        }
        g_free(data);
    }
    g_ptr_array_free(files, TRUE);
    if (done == 0)
        failed++; /* nothing replayed: the folders are missing */
    printf("%u passed, %u failed\n", done, failed);
    return failed ? 1 : 0;
}
