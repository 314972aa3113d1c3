// oneDNN's C API (Debian: libdnnl-dev, built with the OpenMP runtime) and the OpenMP calls
// used to keep its threads from oversubscribing the cores.
#include <oneapi/dnnl/dnnl.h>
int omp_get_max_threads(void);
void omp_set_num_threads(int n);
