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
#include <sys/statvfs.h>
#include <signal.h>
#include <pthread.h>

static inline ssize_t cfuse_getxattr(const char *path, const char *name, void *value, size_t size) {
    return getxattr(path, name, value, size);
}

static inline int cfuse_api_version(void) { return FUSE_USE_VERSION; }

// struct stat and fuse_entry_param are easier to fill in C than through Swift's imports.
// `access` is the permission bits of a chunk file (its source file's read bits under
// --allow-other), or -1 for the defaults: 0555 directories, 0444 files, owned by root.
static inline void cfuse_fill_stat(struct stat *st, fuse_ino_t ino, int directory, unsigned long long size, long mtime,
                                   int access, unsigned uid, unsigned gid) {
    memset(st, 0, sizeof(*st));
    st->st_ino = ino;
    st->st_mode = directory ? (S_IFDIR | 0555) : (S_IFREG | (access >= 0 ? (access & 0444) : 0444));
    if (access >= 0) { st->st_uid = uid; st->st_gid = gid; }
    st->st_nlink = directory ? 2 : 1;
    st->st_size = (off_t)size;
    st->st_blksize = 4096;
    st->st_blocks = (blkcnt_t)((size + 511) / 512);
    st->st_mtime = mtime;
    st->st_ctime = mtime;
    st->st_atime = mtime;
}

static inline void cfuse_fill_entry(struct fuse_entry_param *e, fuse_ino_t ino, int directory, unsigned long long size, long mtime, double timeout,
                                    int access, unsigned uid, unsigned gid) {
    memset(e, 0, sizeof(*e));
    e->ino = ino;
    e->generation = 1;
    e->attr_timeout = timeout;
    e->entry_timeout = timeout;
    cfuse_fill_stat(&e->attr, ino, directory, size, mtime, access, uid, gid);
}

static inline int cfuse_reply_entry(fuse_req_t req, fuse_ino_t ino, int directory, unsigned long long size, long mtime, double timeout,
                                    int access, unsigned uid, unsigned gid) {
    struct fuse_entry_param e;
    cfuse_fill_entry(&e, ino, directory, size, mtime, timeout, access, uid, gid);
    return fuse_reply_entry(req, &e);
}

static inline int cfuse_reply_attr(fuse_req_t req, fuse_ino_t ino, int directory, unsigned long long size, long mtime, double timeout,
                                   int access, unsigned uid, unsigned gid) {
    struct stat st;
    cfuse_fill_stat(&st, ino, directory, size, mtime, access, uid, gid);
    return fuse_reply_attr(req, &st, timeout);
}

static inline size_t cfuse_add_direntry(fuse_req_t req, char *buf, size_t size, const char *name, fuse_ino_t ino, int directory, off_t next) {
    struct stat st;
    memset(&st, 0, sizeof(st));
    st.st_ino = ino;
    st.st_mode = directory ? S_IFDIR : S_IFREG;
    return fuse_add_direntry(req, buf, size, name, &st, next);
}

static inline size_t cfuse_add_direntry_plus(fuse_req_t req, char *buf, size_t size, const char *name, fuse_ino_t ino, int directory,
                                             unsigned long long fsize, long mtime, double timeout, off_t next,
                                             int access, unsigned uid, unsigned gid) {
    struct fuse_entry_param e;
    cfuse_fill_entry(&e, ino, directory, fsize, mtime, timeout, access, uid, gid);
    return fuse_add_direntry_plus(req, buf, size, name, &e, next);
}

// A read-only filesystem: no free blocks or inodes, the archive's size as its blocks.
static inline int cfuse_reply_statfs(fuse_req_t req, unsigned long long bytes, unsigned long long files) {
    struct statvfs st;
    memset(&st, 0, sizeof(st));
    st.f_bsize = 4096;
    st.f_frsize = 4096;
    st.f_blocks = (fsblkcnt_t)((bytes + 4095) / 4096);
    st.f_files = (fsfilcnt_t)files;
    st.f_namemax = 255;
    st.f_flag = ST_RDONLY;
    return fuse_reply_statfs(req, &st);
}

// Larger kernel requests: max_write also sets how many pages one read may carry (max_pages).
static inline void cfuse_configure_connection(struct fuse_conn_info *conn, unsigned bytes) {
    conn->max_read = bytes;
    conn->max_write = bytes;
    conn->max_readahead = bytes;
}

static inline int cfuse_open_flags_writable(struct fuse_file_info *fi) { return (fi->flags & O_ACCMODE) != O_RDONLY; }
static inline void cfuse_set_keep_cache(struct fuse_file_info *fi) { fi->keep_cache = 1; }

// SIGINT/SIGTERM/SIGHUP end the session loop. libfuse's own handlers only set the exit flag,
// and the signal may land on any of the process's threads while the loop thread sits in
// read(/dev/fuse); so the handler also forwards the signal to the loop thread, whose read then
// fails with EINTR (no SA_RESTART) and the loop sees the flag.
struct cfuse_exit_state {
    struct fuse_session *volatile session;
    pthread_t loop_thread;
};

// A function-local static: a header-only shim cannot define globals for Swift to link against.
static inline struct cfuse_exit_state *cfuse_exit_state(void) {
    static struct cfuse_exit_state state;
    return &state;
}

static void cfuse_exit_handler(int sig) {
    struct cfuse_exit_state *state = cfuse_exit_state();
    if (state->session) fuse_session_exit(state->session);
    if (!pthread_equal(pthread_self(), state->loop_thread)) pthread_kill(state->loop_thread, sig);
}

// Call on the thread that will run the session loop.
static inline int cfuse_install_exit_handlers(struct fuse_session *se) {
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = cfuse_exit_handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;
    cfuse_exit_state()->session = se;
    cfuse_exit_state()->loop_thread = pthread_self();
    int signals[] = {SIGINT, SIGTERM, SIGHUP};
    for (unsigned i = 0; i < 3; i++) {
        if (sigaction(signals[i], &sa, NULL) != 0) return -1;
    }
    signal(SIGPIPE, SIG_IGN);
    sigset_t set;
    sigemptyset(&set);
    for (unsigned i = 0; i < 3; i++) sigaddset(&set, signals[i]);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    return 0;
}

static void cfuse_shutting_down_handler(int sig) { (void)sig; }

// Once the loop has ended the daemon is already on its way out: a SIGTERM that arrives now
// (a service manager, or a user after `unmount --lazy`) must not turn a clean exit into a kill,
// so the signals are absorbed rather than given back their default action.
static inline void cfuse_remove_exit_handlers(void) {
    cfuse_exit_state()->session = NULL;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = cfuse_shutting_down_handler;
    sigemptyset(&sa.sa_mask);
    int signals[] = {SIGINT, SIGTERM, SIGHUP};
    for (unsigned i = 0; i < 3; i++) sigaction(signals[i], &sa, NULL);
}

static inline struct fuse_session *cfuse_session_new(int argc, char **argv, const struct fuse_lowlevel_ops *ops, void *userdata) {
    struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
    return fuse_session_new(&args, ops, sizeof(*ops), userdata);
}
#endif
