/* testutil.h: what the Check suites share: the suite list and small helpers. */
#ifndef TJ_TESTUTIL_H
#define TJ_TESTUTIL_H

#include <check.h>
#include "tapejit.h"

Suite *math_suite(void);
Suite *rng_suite(void);
Suite *blas_suite(void);
Suite *print_suite(void);
Suite *tensor_suite(void);
Suite *ops_suite(void);
Suite *grad_suite(void);
Suite *tape_suite(void);
Suite *alloc_suite(void);
Suite *engine_suite(void);
Suite *lower_math_suite(void);
Suite *lower_reduce_suite(void);
Suite *compile_suite(void);
Suite *jit_suite(void);
Suite *nn_suite(void);
Suite *optim_suite(void);
Suite *data_suite(void);
Suite *io_suite(void);
Suite *profile_suite(void);
Suite *dump_suite(void);

/* Asserts the first error's code and that its message contains `part`, then clears it. */
#define ck_assert_error(code, part)                                                   \
    do {                                                                              \
        ck_assert_int_eq(tj_error_code(), (code));                                    \
        ck_assert_msg(strstr(tj_last_error(), (part)) != NULL,                        \
                      "error message '%s' lacks '%s'", tj_last_error(), (part));     \
        tj_clear_error();                                                             \
    } while (0)

/* Value i of a tensor as double, whatever its dtype. */
double tu_get(tj_tensor *t, int64_t i);
/* The bytes of the file at path, NUL-terminated (free them), their count in *n (n may be
 * NULL); NULL if it cannot be opened. */
char *tu_slurp(const char *path, size_t *n);

#endif
