/* gradients.c: the gradient tape in a few lines: first and second derivatives, two tapes
 * at once, and a variable updated by gradient descent. Checks its own results. */
#include <math.h>
#include <stdio.h>
#include <tapejit.h>

int main(void) {
    int bad = 0;
    tj_scope_begin();

    /* y = tanh(x); dy/dx and d2y/dx2 with a tape watching a tape */
    tj_tensor *x = tj_tensor_from(TJ_F32, TJ_SHAPE(3), (float[]){-1.0f, 0.0f, 0.5f});
    tj_tape *outer = tj_tape_begin(0), *inner = tj_tape_begin(0);
    tj_tape_watch(outer, x);
    tj_tape_watch(inner, x);
    tj_tensor *y = tj_tanh(x), *dy, *d2y;
    tj_tape_gradient(inner, y, 1, &x, &dy);
    tj_tape_gradient(outer, dy, 1, &x, &d2y);
    tj_tape_free(inner);
    tj_tape_free(outer);
    printf("x      = "); tj_print(x);
    printf("dy/dx  = "); tj_print(dy);
    printf("d2y/dx2 = "); tj_print(d2y);
    for (int i = 0; i < 3; i++) {
        double xi = ((const float *)tj_tensor_data(x))[i], t = tanh(xi);
        bad |= fabs(((const float *)tj_tensor_data(dy))[i] - (1 - t * t)) > 1e-6;
        bad |= fabs(((const float *)tj_tensor_data(d2y))[i] - (-2 * t * (1 - t * t))) > 1e-6;
    }

    /* fit w in y = w * x to data made with w = 3, by gradient descent on a variable */
    tj_tensor *xs = tj_tensor_from(TJ_F32, TJ_SHAPE(4), (float[]){1, 2, 3, 4});
    tj_tensor *ys = tj_mul(xs, tj_scalar(3.0));
    tj_tensor *w = tj_variable(tj_zeros(TJ_F32, TJ_SHAPE()), "w");
    for (int step = 0; step < 50; step++) {
        tj_scope_begin();                               /* the loop body owns its temporaries */
        tj_tape *tape = tj_tape_begin(0);               /* variables are watched automatically */
        tj_tensor *err = tj_sub(tj_mul(xs, w), ys);
        tj_tensor *loss = tj_mean(tj_mul(err, err), 0, NULL, false), *g;
        tj_tape_gradient(tape, loss, 1, &w, &g);
        tj_assign(w, tj_sub(w, tj_mul(g, tj_scalar(0.05))));
        tj_tape_free(tape);
        tj_scope_end();
    }
    printf("w after 50 steps = "); tj_print(w);
    bad |= fabs(tj_item(w) - 3.0) > 1e-4;
    tj_variable_free(w);

    if (tj_error_code()) {
        fprintf(stderr, "error: %s\n", tj_last_error());
        bad = 1;
    }
    tj_scope_end();
    return bad;
}
