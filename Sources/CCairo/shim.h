// cairo's C API (Debian: libcairo2-dev), used by the QC target to draw and write PNG pictures.
#include <cairo/cairo.h>
