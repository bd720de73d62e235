// The host side of dml_plugin.h. The interface is the header; this file gives the C target the
// version it was built with, which the Swift host compares against each plugin's descriptors.
#include "dml_plugin.h"

uint32_t dml_plugin_host_abi_version(void) { return DML_PLUGIN_ABI_VERSION; }
