/* SPDX-License-Identifier: Apache-2.0 */
/**
 * gatherd/gatherd.h - everything a plugin author includes.
 *
 * Build an out-of-tree plugin with:
 *     cc -shared -fPIC $(pkg-config --cflags --libs gatherd) -o my.so my.c
 * See docs/plugin-guide.md for a walk-through.
 */
#ifndef GATHERD_GATHERD_H
#define GATHERD_GATHERD_H

#include <gatherd/common.h>
#include <gatherd/log.h>
#include <gatherd/batch.h>
#include <gatherd/lineproto.h>
#include <gatherd/plugin.h>

#endif
