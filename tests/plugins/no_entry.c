/* SPDX-License-Identifier: Apache-2.0 */
/* no_entry - a shared object without gd_plugin_entry. */
#include <gatherd/gatherd.h>

GD_EXPORT int not_a_plugin(void);
GD_EXPORT int not_a_plugin(void)
{
    return 42;
}
