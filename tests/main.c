/* main.c: the one test runner; ctest runs it. CK_RUN_SUITE / CK_RUN_CASE select,
 * CK_FORK=no runs in one process for the debugger. */
#include <stdlib.h>
#include "testutil.h"

int main(void) {
    /* Tests that compare compiled with eager need the code from the second call on; the
     * background compile has tests of its own (check_jit.c), which turn it on. */
    tj_set_background_compile(false);
    SRunner *sr = srunner_create(tensor_suite());
    srunner_add_suite(sr, math_suite());
    srunner_add_suite(sr, rng_suite());
    srunner_add_suite(sr, blas_suite());
    srunner_add_suite(sr, print_suite());
    srunner_add_suite(sr, ops_suite());
    srunner_add_suite(sr, grad_suite());
    srunner_add_suite(sr, tape_suite());
    srunner_add_suite(sr, alloc_suite());
#ifdef TJ_HAVE_JIT
    srunner_add_suite(sr, engine_suite());
    srunner_add_suite(sr, lower_math_suite());
    srunner_add_suite(sr, lower_reduce_suite());
    srunner_add_suite(sr, compile_suite());
#endif
    srunner_add_suite(sr, jit_suite());
    srunner_add_suite(sr, nn_suite());
    srunner_add_suite(sr, optim_suite());
    srunner_add_suite(sr, data_suite());
    srunner_add_suite(sr, io_suite());
    srunner_add_suite(sr, profile_suite());
    srunner_add_suite(sr, dump_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
