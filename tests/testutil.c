/* testutil.c: helpers shared by the suites. */
#include "testutil.h"

double tu_get(tj_tensor *t, int64_t i) {
    const void *p = tj_tensor_data(t);
    switch (tj_tensor_dtype(t)) {
    case TJ_F32: return ((const float *)p)[i];
    case TJ_F64: return ((const double *)p)[i];
    case TJ_I32: return ((const int32_t *)p)[i];
    }
    return 0;
}
