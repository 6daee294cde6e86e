/* lvma_guest.h - what the guest files of the binding share: the guest
 * classes (lvma_guest.c) and the file writer (lvma_extract.c). */
#ifndef LVMA_GUEST_H
#define LVMA_GUEST_H

#include "lvma.h"

/* the guest file at idx (a vma.guestfile), NULL when it is something else;
 * raises on a closed one */
vma_file *lvma_test_guestfile(lua_State *L, int idx);
/* vma.file_writer(dest [, opts]) */
int lvma_guest_writer_open(lua_State *L);
void lvma_open_writer_class(lua_State *L);

#endif
