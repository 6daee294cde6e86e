# vma - build, test, benchmark, install and package.
#   make            build build/vma, build/vma.so and build/libvma.a (and
#                   build/cmod/vma/rbd.so, the Ceph RBD module, when librbd-dev is
#                   installed; `make rbd` builds it or fails)
#   make check      every test (C unit tests, the fuzzing seeds and regressions
#                   through every harness, Lua tests, command-line tests, the
#                   Ceph RBD and libguestfs tests, the Debian package), every
#                   set of packages installed first
#   make check-core the same without installing Ceph and libguestfs: their
#                   tests are skipped (reported) unless already installed
#   make check-ceph the Ceph RBD tests alone, after installing Ceph (DEBS_CEPH)
#   make check-guestfs  the tests that use libguestfs alone, after installing it
#   make fuzz       the libFuzzer harnesses of tests/fuzz, FUZZ_SECONDS each
#   make demo       build, make a sample disk, back it up, list, verify, restore, compare
#   make bench      throughput of create, extract and verify beside cat and cp
#   make deb        the Debian packages in build/deb/ (dpkg-buildpackage, lintian)
#   make install    PREFIX=/usr/local DESTDIR=
#                   (the nbdkit plugin goes into nbdkit's plugin folder,
#                   NBDKIT_PLUGINDIR; vma-fuse into LIBEXECDIR; BIN_NAME names
#                   the executable)
PREFIX    ?= /usr/local
DESTDIR   ?=
BINDIR    ?= $(PREFIX)/bin
BIN_NAME  ?= vma
LUADIR    ?= $(PREFIX)/share/lua/5.4
MANDIR    ?= $(PREFIX)/share/man
DOCDIR    ?= $(PREFIX)/share/doc/vma
EXAMPLEDIR ?= $(DOCDIR)/examples
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
LUA_CMOD  ?= $(PREFIX)/lib/lua/5.4
LIBEXECDIR ?= $(PREFIX)/lib/vma
NBDKIT_PLUGINDIR ?= $(shell pkg-config --variable=plugindir nbdkit 2>/dev/null || echo /usr/lib/x86_64-linux-gnu/nbdkit/plugins)
VERSION   := 0.1.0

CC        ?= cc
PKGS      := lua5.4 glib-2.0 uuid libcrypto libzstd zlib libisal lzo2 libxxhash

# The Debian packages each target needs, one set each (tools/deps.sh installs
# the missing ones; README.md says what each set costs on a fresh Debian 12).
# A library the build links goes into DEBS_BUILD and into debian/control's
# Build-Depends (tests/lua/packaging_spec.lua checks that they agree).
#   make, make demo, make install:  DEBS_BUILD DEBS_RUN
#   make check:                     + DEBS_CHECK DEBS_DEB and debian/control's
#                                     Build-Depends (its test builds the package)
#   make deb:                       DEBS_DEB and the Build-Depends
#   make check-ceph / -guestfs:     + DEBS_CEPH / DEBS_GUESTFS
#   make fuzz:                      DEBS_BUILD DEBS_FUZZ
#   make demo:                      DEBS_BUILD DEBS_RUN DEBS_DEMO
DEBS_BUILD   := gcc make pkg-config liblua5.4-dev libglib2.0-dev uuid-dev libssl-dev \
                libzstd-dev zlib1g-dev libisal-dev liblzo2-dev libxxhash-dev nbdkit-plugin-dev \
                libfuse3-dev libtsk-dev libsqlite3-dev
DEBS_RUN     := lua-argparse lua-filesystem lua-dkjson zstd lzop libtsk19
DEBS_CHECK   := lua5.4 lua-busted lua-cjson gzip valgrind libtsan2 nbdkit libnbd-bin fuse3 qemu-utils \
                e2fsprogs gdisk bash-completion sleuthkit fdisk xfsprogs dosfstools mtools \
                ntfs-3g exfatprogs sqlite3 chromium
DEBS_DEB     := dpkg-dev debhelper lintian
DEBS_CEPH    := librbd-dev librados-dev ceph-mon ceph-osd ceph-common
DEBS_GUESTFS := lua-guestfs btrfs-progs cryptsetup-bin
DEBS_FUZZ    := clang libclang-rt-14-dev
# make demo makes a guest disk without root: sfdisk, mke2fs -d
DEBS_DEMO    := fdisk e2fsprogs

# the catalog of a store (src/lua/lvma_sqlite.c): Debian's libsqlite3, in the
# Lua binding only (vma, vma.so), never in libvma
SQLITE_CFLAGS := $(shell pkg-config --cflags sqlite3 2>/dev/null)
SQLITE_LIBS := $(shell pkg-config --libs sqlite3 2>/dev/null || echo -lsqlite3)
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CFLAGS    ?= -O2 -g
CFLAGS    += -std=c11 -Wall -Wextra -Werror -fPIC $(PKG_CFLAGS) $(SQLITE_CFLAGS) -DVMA_VERSION='"$(VERSION)"'
LDLIBS    += $(PKG_LIBS) -lpthread
LUA_LIBS  := $(SQLITE_LIBS)
# the libraries of libvma alone (no Lua): for vma.so, the nbdkit plugin, vma-fuse
CORE_LIBS := $(shell pkg-config --libs glib-2.0 uuid libcrypto libzstd zlib libisal lzo2 libxxhash 2>/dev/null) -lpthread
# The Sleuth Kit: its headers at build time (libtsk-dev); the library itself
# is loaded by src/lib/guest/fs_tsk.c (dlopen) the first time an NTFS, FAT...
# is opened (it brings 40 libraries: libstdc++, libewf, libcurl, GnuTLS...),
# by this name
TSK_SONAME := $(shell objdump -p "$$(pkg-config --variable=libdir tsk 2>/dev/null)/libtsk.so" 2>/dev/null | awk '/SONAME/ { print $$2 }')
CFLAGS    += $(shell pkg-config --cflags tsk 2>/dev/null) $(if $(TSK_SONAME),-DVMA_TSK_SONAME='"$(TSK_SONAME)"')
GUEST_LIBS := -ldl
NBDKIT_CFLAGS := $(shell pkg-config --cflags nbdkit 2>/dev/null)
FUSE_CFLAGS := $(shell pkg-config --cflags fuse3 2>/dev/null)
FUSE_LIBS := $(shell pkg-config --libs fuse3 2>/dev/null)

# vma.rbd (src/rbd -> build/cmod/vma/rbd.so): Ceph RBD images through librbd, in a
# module of its own so that vma and vma.so never load librbd. It links librbd,
# librados and GLib, never libvma (it only includes vma.h and lvma_ext.h for
# the types, and compiles in RBD_SHARED). librbd and librados ship no
# pkg-config file: -lrbd -lrados.
RBD_LIBS  := -lrbd -lrados $(shell pkg-config --libs glib-2.0 2>/dev/null) -lpthread
HAVE_RBD  := $(shell printf '\043include <rbd/librbd.h>\n' | $(CC) -E -x c - >/dev/null 2>&1 && echo yes)

B         := build
# the library (src/lib: a folder per layer, base < codec < format < access),
# the Lua binding (src/lua), the host (src/host)
LIB_SRC   := $(sort $(wildcard src/lib/*/*.c))
LIB_HDRS  := $(wildcard src/lib/*.h src/lib/*/*.h)
LIB_OBJ   := $(LIB_SRC:src/%.c=$(B)/%.o)
LUA_SRC   := $(sort $(wildcard src/lua/*.c))
LUA_OBJ   := $(LUA_SRC:src/%.c=$(B)/%.o)
RBD_SRC   := $(sort $(wildcard src/rbd/*.c))
RBD_SO    := $(if $(HAVE_RBD),$(B)/cmod/vma/rbd.so)
# compiled into rbd.so too (it links no libvma): the threads, the class rules
RBD_SHARED := src/lib/base/thread.c src/lua/lvma_class.c
CFLAGS    += -Isrc/lib

.PHONY: all rbd asan tsan deps deps-check deps-deb deps-ceph deps-guestfs deps-fuzz deps-demo check check-ceph \
        check-guestfs check-core check-all demo bench deb install uninstall clean fuzz

all: $(B)/vma $(B)/vma.so $(B)/libvma.a $(B)/nbdkit-vma-plugin.so $(B)/vma-fuse $(B)/vma-fuse-files $(RBD_SO)

$(B)/lib/%.o: src/lib/%.c $(LIB_HDRS)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(B)/lua/%.o: src/lua/%.c $(wildcard src/lua/*.h) $(LIB_HDRS)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

# made anew each time: a member of a renamed source must not linger
$(B)/libvma.a: $(LIB_OBJ)
	rm -f $@
	$(AR) rcs $@ $^

$(B)/host/main.o: src/host/main.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -DVMA_LUADIR='"$(LUADIR)"' -DVMA_LUA_CMOD='"$(LUA_CMOD)"' -c -o $@ $<

$(B)/vma: $(B)/host/main.o $(LUA_OBJ) $(B)/libvma.a
	$(CC) $(LDFLAGS) -o $@ $(B)/host/main.o $(LUA_OBJ) $(B)/libvma.a $(LDLIBS) $(LUA_LIBS)

# the module for the stock interpreter: lua5.4 resolves lua_* itself
$(B)/vma.so: $(LUA_OBJ) $(B)/libvma.a
	$(CC) $(LDFLAGS) -shared -o $@ $(LUA_OBJ) $(B)/libvma.a $(CORE_LIBS) $(LUA_LIBS) $(GUEST_LIBS)

# require "vma.rbd" (lua5.4 and the vma host resolve lua_* themselves)
rbd: $(B)/cmod/vma/rbd.so
$(B)/cmod/vma/rbd.so: $(RBD_SRC) $(RBD_SHARED) src/rbd/rbd.h src/lua/lvma_ext.h src/lua/lvma.h $(LIB_HDRS)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -Isrc/lua -fvisibility=hidden $(LDFLAGS) -shared -o $@ $(RBD_SRC) $(RBD_SHARED) $(RBD_LIBS)

# `nbdkit vma ARCHIVE` (src/nbdkit) and `vma-fuse ARCHIVE DIR` (src/fuse)
$(B)/nbdkit-vma-plugin.so: src/nbdkit/vma-plugin.c $(B)/libvma.a $(LIB_HDRS)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(NBDKIT_CFLAGS) $(LDFLAGS) -shared -o $@ $< $(B)/libvma.a $(CORE_LIBS)

# the two FUSE programs share src/fuse/common.c (options, mount, serving)
FUSE_COMMON := src/fuse/common.c src/fuse/common.h
$(B)/vma-fuse: src/fuse/vma-fuse.c $(FUSE_COMMON) $(B)/libvma.a $(LIB_HDRS)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(FUSE_CFLAGS) $(LDFLAGS) -o $@ $< src/fuse/common.c $(B)/libvma.a $(FUSE_LIBS) $(CORE_LIBS)

# `vma mount --files`: the guest's files (src/fuse/vma-fuse-files.c)
$(B)/vma-fuse-files: src/fuse/vma-fuse-files.c $(FUSE_COMMON) $(B)/libvma.a $(LIB_HDRS)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(FUSE_CFLAGS) $(LDFLAGS) -o $@ $< src/fuse/common.c $(B)/libvma.a $(FUSE_LIBS) $(CORE_LIBS) $(GUEST_LIBS)

TEST_SRC  := $(sort $(wildcard tests/c/*.c))
$(B)/test_core: $(TEST_SRC) tests/c/check.h $(B)/libvma.a $(LIB_HDRS)
	$(CC) $(CFLAGS) -Isrc/lib -o $@ $(TEST_SRC) $(B)/libvma.a $(LDLIBS)

# the fuzzing harnesses (tests/fuzz/fuzz_*.c) without libFuzzer: build/fuzz_replay
# runs every seed and regression through each (tests/fuzz/replay.c); each
# harness is compiled with its entry point renamed fuzz_one_NAME
FUZZ_SRC   := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_NAMES := $(FUZZ_SRC:tests/fuzz/fuzz_%.c=%)
FUZZ_DEPS  := tests/fuzz/replay.c tests/fuzz/common.c tests/fuzz/common.h
$(B)/fuzz-replay/harnesses.h: Makefile $(FUZZ_SRC)
	@mkdir -p $(@D)
	printf '#define HARNESSES %s\n' '$(foreach n,$(FUZZ_NAMES),H($(n)))' >$@

$(B)/fuzz-replay/%.o: tests/fuzz/fuzz_%.c tests/fuzz/common.h $(LIB_HDRS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -DLLVMFuzzerTestOneInput=fuzz_one_$* -c -o $@ $<

$(B)/fuzz_replay: $(FUZZ_DEPS) $(FUZZ_NAMES:%=$(B)/fuzz-replay/%.o) $(B)/fuzz-replay/harnesses.h $(B)/libvma.a
	$(CC) $(CFLAGS) -I$(B)/fuzz-replay -o $@ tests/fuzz/replay.c tests/fuzz/common.c \
	  $(FUZZ_NAMES:%=$(B)/fuzz-replay/%.o) $(B)/libvma.a $(LDLIBS)

# the same programs under AddressSanitizer + UndefinedBehaviorSanitizer
ASAN_CFLAGS := -std=c11 -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
               -fno-sanitize-recover=undefined -Wall -Wextra -Werror $(PKG_CFLAGS) \
               -DVMA_VERSION='"$(VERSION)"' -Isrc/lib
asan: $(B)/asan/vma $(B)/asan/test_core $(B)/asan/fuzz_replay

# libguestfs (the libguestfs engine, loaded into vma by lua-guestfs) calls
# xdrmem_create, which AddressSanitizer intercepts; glibc no longer has it,
# so the interceptor finds the real one only if libtirpc is loaded with the
# program. Both are linked in when they are there (else the engine cannot
# run either), which also keeps libguestfs loaded when Lua unloads
# lua-guestfs at the end, so that LeakSanitizer can name it: its one leak
# (1 byte, strdup when it is loaded) is suppressed in tests/lsan.supp
ASAN_SOLIB = $(shell p=$$($(CC) -print-file-name=$(1)); [ -e "$$p" ] && echo "$$p")
ASAN_GUESTFS := $(if $(call ASAN_SOLIB,libguestfs.so.0),-Xlinker --no-as-needed $(call ASAN_SOLIB,libtirpc.so.3) $(call ASAN_SOLIB,libguestfs.so.0) -Xlinker --as-needed)

$(B)/asan/vma: src/host/main.c $(LUA_SRC) $(LIB_SRC) $(LIB_HDRS) src/lua/lvma.h
	@mkdir -p $(B)/asan
	$(CC) $(ASAN_CFLAGS) -DVMA_LUADIR='"$(LUADIR)"' -DVMA_LUA_CMOD='"$(LUA_CMOD)"' -o $@ src/host/main.c $(LUA_SRC) $(LIB_SRC) $(LDLIBS) $(LUA_LIBS) $(ASAN_GUESTFS)

$(B)/asan/test_core: $(TEST_SRC) tests/c/check.h $(LIB_SRC) $(LIB_HDRS)
	@mkdir -p $(B)/asan
	$(CC) $(ASAN_CFLAGS) -o $@ $(TEST_SRC) $(LIB_SRC) $(LDLIBS)

# the C tests under ThreadSanitizer (the decoder, copy, compression, spill,
# lzo and reader threads), run by make check (tests/run.sh); gcc's runtime
# (libtsan2)
TSAN_CFLAGS := -std=c11 -O1 -g -fno-omit-frame-pointer -fsanitize=thread \
               -Wall -Wextra -Werror $(PKG_CFLAGS) -DVMA_VERSION='"$(VERSION)"' -Isrc/lib
tsan: $(B)/tsan/test_core
$(B)/tsan/test_core: $(TEST_SRC) tests/c/check.h $(LIB_SRC) $(LIB_HDRS)
	@mkdir -p $(B)/tsan
	$(CC) $(TSAN_CFLAGS) -o $@ $(TEST_SRC) $(LIB_SRC) $(LDLIBS)

$(B)/asan/fuzz-replay/%.o: tests/fuzz/fuzz_%.c tests/fuzz/common.h $(LIB_HDRS)
	@mkdir -p $(@D)
	$(CC) $(ASAN_CFLAGS) -DLLVMFuzzerTestOneInput=fuzz_one_$* -c -o $@ $<

$(B)/asan/fuzz_replay: $(FUZZ_DEPS) $(FUZZ_NAMES:%=$(B)/asan/fuzz-replay/%.o) $(B)/fuzz-replay/harnesses.h $(LIB_SRC) $(LIB_HDRS)
	$(CC) $(ASAN_CFLAGS) -I$(B)/fuzz-replay -o $@ tests/fuzz/replay.c tests/fuzz/common.c \
	  $(FUZZ_NAMES:%=$(B)/asan/fuzz-replay/%.o) $(LIB_SRC) $(LDLIBS)

# the dependency step of each target: installs what is missing of its sets
# (and waits for another apt to finish; tools/deps.sh)
deps:
	@sh tools/deps.sh $(DEBS_BUILD) $(DEBS_RUN)
deps-check:
	@sh tools/deps.sh $(DEBS_BUILD) $(DEBS_RUN) $(DEBS_CHECK) $(DEBS_DEB) \
	  $$(sh tools/mkdeb.sh --build-depends)
deps-deb:
	@sh tools/deps.sh $(DEBS_DEB) $$(sh tools/mkdeb.sh --build-depends)
deps-ceph:
	@sh tools/deps.sh $(DEBS_CEPH)
deps-guestfs:
	@sh tools/deps.sh $(DEBS_GUESTFS)
deps-demo:
	@sh tools/deps.sh $(DEBS_BUILD) $(DEBS_RUN) $(DEBS_DEMO)
deps-fuzz:
	@sh tools/deps.sh $(DEBS_BUILD) $(DEBS_FUZZ)

check: deps-check deps-ceph deps-guestfs
	@$(MAKE) --no-print-directory all rbd $(B)/test_core $(B)/fuzz_replay
	@sh tests/run.sh

check-core: deps-check
	@$(MAKE) --no-print-directory all $(B)/test_core $(B)/fuzz_replay
	@sh tests/run.sh

# the tests tagged #ceph or #guestfs only, with their packages
check-ceph: deps-check deps-ceph
	@$(MAKE) --no-print-directory all rbd
	@VMA_TAGS=ceph sh tests/run.sh
check-guestfs: deps-check deps-guestfs
	@$(MAKE) --no-print-directory all
	@VMA_TAGS=guestfs sh tests/run.sh

# (the name an earlier version had for make check)
check-all: check

demo: deps-demo
	@$(MAKE) --no-print-directory all
	@sh tools/demo.sh

bench: deps-check
	@$(MAKE) --no-print-directory all
	@sh bench/run.sh

fuzz: deps-fuzz
	@sh tests/fuzz/run.sh

# build/deb/*.deb: the source tree copied to build/deb/vma-VERSION, built
# there with dpkg-buildpackage -us -uc -b, then checked by lintian
deb: deps-deb
	@sh tools/mkdeb.sh

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LUADIR)/vma $(DESTDIR)$(LUA_CMOD) \
	  $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(DOCDIR) $(DESTDIR)$(EXAMPLEDIR) $(DESTDIR)$(BASHCOMPDIR) \
	  $(DESTDIR)$(NBDKIT_PLUGINDIR) $(DESTDIR)$(LIBEXECDIR)
	install -m 755 $(B)/vma $(DESTDIR)$(BINDIR)/$(BIN_NAME)
	install -m 644 $(B)/vma.so $(DESTDIR)$(LUA_CMOD)/vma.so
	[ ! -f $(B)/cmod/vma/rbd.so ] || { install -d $(DESTDIR)$(LUA_CMOD)/vma && \
	  install -m 644 $(B)/cmod/vma/rbd.so $(DESTDIR)$(LUA_CMOD)/vma/rbd.so; }
	cd lua && find vma -type d -exec install -d $(DESTDIR)$(LUADIR)/{} \;
	cd lua && find vma -type f -name '*.lua' -exec install -m 644 {} $(DESTDIR)$(LUADIR)/{} \;
	install -m 644 docs/vma.1 docs/nbdkit-vma-plugin.1 $(DESTDIR)$(MANDIR)/man1/
	install -m 644 README.md docs/*.md $(DESTDIR)$(DOCDIR)/
	install -m 644 examples/* $(DESTDIR)$(EXAMPLEDIR)/
	install -m 644 completions/vma.bash $(DESTDIR)$(BASHCOMPDIR)/vma
	install -m 755 $(B)/nbdkit-vma-plugin.so $(DESTDIR)$(NBDKIT_PLUGINDIR)/nbdkit-vma-plugin.so
	install -m 755 $(B)/vma-fuse $(DESTDIR)$(LIBEXECDIR)/vma-fuse
	install -m 755 $(B)/vma-fuse-files $(DESTDIR)$(LIBEXECDIR)/vma-fuse-files
	printf -- '-- written by make install: where the helper programs are\nreturn { nbdkit_plugin = "%s", fuse = "%s", fuse_files = "%s" }\n' \
	  '$(NBDKIT_PLUGINDIR)/nbdkit-vma-plugin.so' '$(LIBEXECDIR)/vma-fuse' '$(LIBEXECDIR)/vma-fuse-files' >$(DESTDIR)$(LUADIR)/vma/site.lua

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/$(BIN_NAME) $(DESTDIR)$(LUA_CMOD)/vma.so
	rm -f $(DESTDIR)$(MANDIR)/man1/vma.1 $(DESTDIR)$(MANDIR)/man1/nbdkit-vma-plugin.1
	rm -f $(DESTDIR)$(LUA_CMOD)/vma/rbd.so
	-rmdir $(DESTDIR)$(LUA_CMOD)/vma 2>/dev/null
	rm -f $(DESTDIR)$(NBDKIT_PLUGINDIR)/nbdkit-vma-plugin.so $(DESTDIR)$(LIBEXECDIR)/vma-fuse
	rm -f $(DESTDIR)$(LIBEXECDIR)/vma-fuse-files
	-rmdir $(DESTDIR)$(LIBEXECDIR) 2>/dev/null
	rm -rf $(DESTDIR)$(LUADIR)/vma $(DESTDIR)$(DOCDIR)
	rm -f $(DESTDIR)$(BASHCOMPDIR)/vma

clean:
	rm -rf $(B)
