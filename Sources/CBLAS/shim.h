// OpenBLAS's CBLAS (Debian's libopenblas-dev puts it on the multiarch include path).
#include <cblas.h>
