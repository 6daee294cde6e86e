/* lvma_ext.h - how a separate C module (vma.rbd, src/rbd) hands a sink or a
 * source of its own to the binding without linking libvma.
 *
 * The module makes a full userdata whose block starts with one of these
 * structs, with the metatable VMA_SINK_MT or VMA_SOURCE_MT.  The binding
 * (lvma.c) accepts it as an extract target ({ sink = ud, write_zero =,
 * fresh = }) or as the image of w:write_device(id, ud), fills in the host
 * hooks below, and calls ops with ctx.  libvma (in the host) does the
 * calling; the module only includes vma.h for the types and must not link
 * libvma: a second copy would have its own globals (the interrupt flag).
 *
 * The userdata owns ctx: it stays valid until the module's close method or
 * __gc; ops is NULL once it is closed.  (The layout is that of ABI 1, when
 * the two were structs of their own.)
 */
#ifndef LVMA_EXT_H
#define LVMA_EXT_H

#include "vma.h"

#define VMA_SINK_MT   "vma.sink"
#define VMA_SOURCE_MT "vma.source"
/* changes whenever these structs do */
#define VMA_EXT_ABI   1

/* what the host gives the module before it calls its ops */
typedef struct {
    /* libvma's vma_interrupted(): long waits poll it (Ctrl-C) */
    gboolean (*interrupted)(void);
    /* VMA_ERROR: the domain of the errors the ops set */
    GQuark domain;
} vma_ext_hooks;

/* the block a sink's (VMA_SINK_MT) or a source's (VMA_SOURCE_MT) userdata
 * starts with */
typedef struct {
    union {
        const vma_sink_ops *sink;     /* a VMA_SINK_MT userdata */
        const vma_source_ops *source; /* a VMA_SOURCE_MT userdata */
    } ops;                    /* NULL once closed */
    void *ctx;
    const char *label;        /* the target or image in messages */
    uint64_t size;            /* bytes of the image */
    int abi;                  /* VMA_EXT_ABI */
    vma_ext_hooks hooks;      /* filled by the binding */
} vma_ext_ud;

#endif
