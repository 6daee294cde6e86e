/* check.h - the counters and the CHECK macro of the C unit tests */
#ifndef VMA_TEST_CHECK_H
#define VMA_TEST_CHECK_H
#include <stdio.h>

extern int passed, failed;
/* the folder of this run's files */
extern char tmpdir[];

#define CHECK(cond, ...) do { \
        if (cond) { passed++; } else { \
            failed++; fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } \
    } while (0)

/* an image of size bytes with every kind of cluster (zero, full, mixed, a
 * checkerboard), the same for the same seed (test_access.c) */
#include <stdint.h>
#include <stddef.h>
uint8_t *make_image(size_t size, uint32_t seed);

void test_access(void);
void test_lzop(void);
void test_store(void);
void test_guest(void);
#endif
