#ifndef ZARRMOUNT_CFUSE_SHIM_H
#define ZARRMOUNT_CFUSE_SHIM_H
// The FUSE API level is fixed here, once, so every Swift file sees the same structures.
#define FUSE_USE_VERSION 35
#include <fuse_lowlevel.h>
#include <fcntl.h>

#include <string.h>
#include <sys/stat.h>
#include <errno.h>
#include <sys/xattr.h>

static inline ssize_t cfuse_getxattr(const char *path, const char *name, void *value, size_t size) {
    return getxattr(path, name, value, size);
}

static inline int cfuse_api_version(void) { return FUSE_USE_VERSION; }

// struct stat and fuse_entry_param are easier to fill in C than through Swift's imports.
static inline void cfuse_fill_stat(struct stat *st, fuse_ino_t ino, int directory, unsigned long long size, long mtime) {
    memset(st, 0, sizeof(*st));
    st->st_ino = ino;
    st->st_mode = directory ? (S_IFDIR | 0555) : (S_IFREG | 0444);
    st->st_nlink = directory ? 2 : 1;
    st->st_size = (off_t)size;
    st->st_blksize = 4096;
    st->st_blocks = (blkcnt_t)((size + 511) / 512);
    st->st_mtime = mtime;
    st->st_ctime = mtime;
    st->st_atime = mtime;
}

static inline int cfuse_reply_entry(fuse_req_t req, fuse_ino_t ino, int directory, unsigned long long size, long mtime, double timeout) {
    struct fuse_entry_param e;
    memset(&e, 0, sizeof(e));
    e.ino = ino;
    e.generation = 1;
    e.attr_timeout = timeout;
    e.entry_timeout = timeout;
    cfuse_fill_stat(&e.attr, ino, directory, size, mtime);
    return fuse_reply_entry(req, &e);
}

static inline int cfuse_reply_attr(fuse_req_t req, fuse_ino_t ino, int directory, unsigned long long size, long mtime, double timeout) {
    struct stat st;
    cfuse_fill_stat(&st, ino, directory, size, mtime);
    return fuse_reply_attr(req, &st, timeout);
}

static inline size_t cfuse_add_direntry(fuse_req_t req, char *buf, size_t size, const char *name, fuse_ino_t ino, int directory, off_t next) {
    struct stat st;
    memset(&st, 0, sizeof(st));
    st.st_ino = ino;
    st.st_mode = directory ? S_IFDIR : S_IFREG;
    return fuse_add_direntry(req, buf, size, name, &st, next);
}

static inline int cfuse_open_flags_writable(struct fuse_file_info *fi) { return (fi->flags & O_ACCMODE) != O_RDONLY; }
static inline void cfuse_set_keep_cache(struct fuse_file_info *fi) { fi->keep_cache = 1; }

static inline struct fuse_session *cfuse_session_new(int argc, char **argv, const struct fuse_lowlevel_ops *ops, void *userdata) {
    struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
    return fuse_session_new(&args, ops, sizeof(*ops), userdata);
}
#endif
