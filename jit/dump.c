/* dump.c: the dumps of dump.h (being written). */
#include "dump.h"

int tj_dump_parse(const char *list, unsigned *what) { (void)list; *what = 0; return 0; }
unsigned tj_dump_env(void) { return 0; }
const char *tj_dump_env_dir(void) { return "tj-dump"; }
int tj_dump_trace(const char *dir, const char *fname, int sig, unsigned what, const tj_graph *g) {
    (void)dir; (void)fname; (void)sig; (void)what; (void)g;
    return 0;
}
int tj_dump_compiled(const char *dir, const char *fname, int sig, unsigned what, const tj_graph *g, const bool *live,
                     const struct tj_lowered *low, const struct tj_compile_stats *st, size_t arena_bytes) {
    (void)dir; (void)fname; (void)sig; (void)what; (void)g; (void)live; (void)low; (void)st; (void)arena_bytes;
    return 0;
}
