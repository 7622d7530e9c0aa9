/* matmul.c: the first snippet of the eager-execution blog post, in C.
 * m1 = matrix(1:8, nrow = 2, ncol = 4) and m2 = matrix(1:8, nrow = 4, ncol = 2) in R,
 * which fills column by column; their product is [[50 114] [60 140]]. */
#include <stdio.h>
#include <tapejit.h>

int main(void) {
    /* R's column-major fill, written out row by row */
    const int32_t m1_data[2 * 4] = {1, 3, 5, 7,
                                    2, 4, 6, 8};
    const int32_t m2_data[4 * 2] = {1, 5,
                                    2, 6,
                                    3, 7,
                                    4, 8};
    tj_scope_begin();
    tj_tensor *m1 = tj_tensor_from(TJ_I32, TJ_SHAPE(2, 4), m1_data);
    tj_tensor *m2 = tj_tensor_from(TJ_I32, TJ_SHAPE(4, 2), m2_data);
    tj_tensor *m3 = tj_matmul(m1, m2);
    if (!m3) {
        fprintf(stderr, "matmul: %s\n", tj_last_error());
        return 1;
    }
    tj_print(m3);
    const int32_t *v = tj_tensor_data(m3);
    int ok = v[0] == 50 && v[1] == 114 && v[2] == 60 && v[3] == 140;
    tj_scope_end();
    return ok ? 0 : 1;
}
