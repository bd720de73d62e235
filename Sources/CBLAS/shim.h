// OpenBLAS's CBLAS interface and its extensions (thread count, detected core).
// Debian installs it under the multiarch include directory; pkg-config adds the flavour's path.
#include <cblas.h>
