#ifndef ZARRMOUNT_CCURL_SHIM_H
#define ZARRMOUNT_CCURL_SHIM_H
#include <curl/curl.h>

// curl_easy_setopt and curl_easy_getinfo are variadic; Swift needs one typed entry point per kind.
static inline CURLcode ccurl_easy_setopt_long(CURL *handle, CURLoption option, long value) {
    return curl_easy_setopt(handle, option, value);
}
static inline CURLcode ccurl_easy_setopt_string(CURL *handle, CURLoption option, const char *value) {
    return curl_easy_setopt(handle, option, value);
}
static inline CURLcode ccurl_easy_setopt_pointer(CURL *handle, CURLoption option, void *value) {
    return curl_easy_setopt(handle, option, value);
}
static inline CURLcode ccurl_easy_setopt_slist(CURL *handle, CURLoption option, struct curl_slist *value) {
    return curl_easy_setopt(handle, option, value);
}
static inline CURLcode ccurl_easy_setopt_write_callback(CURL *handle,
        size_t (*callback)(char *, size_t, size_t, void *)) {
    return curl_easy_setopt(handle, CURLOPT_WRITEFUNCTION, callback);
}
static inline CURLcode ccurl_easy_setopt_header_callback(CURL *handle,
        size_t (*callback)(char *, size_t, size_t, void *)) {
    return curl_easy_setopt(handle, CURLOPT_HEADERFUNCTION, callback);
}
static inline CURLcode ccurl_easy_getinfo_long(CURL *handle, CURLINFO info, long *value) {
    return curl_easy_getinfo(handle, info, value);
}
static inline CURLcode ccurl_easy_getinfo_pointer(CURL *handle, CURLINFO info, void **value) {
    return curl_easy_getinfo(handle, info, value);
}
static inline CURLMcode ccurl_multi_setopt_long(CURLM *multi, CURLMoption option, long value) {
    return curl_multi_setopt(multi, option, value);
}
// The CURLMsg union is not importable as a field; these read it.
static inline CURLcode ccurl_message_result(CURLMsg *message) { return message->data.result; }
static inline int ccurl_message_is_done(CURLMsg *message) { return message->msg == CURLMSG_DONE; }

// The engine drives libcurl by socket events (curl_multi_socket_action) rather than by
// curl_multi_perform + curl_multi_poll, which walk every transfer and poll every connection on
// each wake-up: at 128 connections and one response per wake-up, most of the engine's CPU.
typedef int (*ccurl_socket_callback)(CURL *easy, curl_socket_t socket, int what, void *userp, void *socketp);
typedef int (*ccurl_timer_callback)(CURLM *multi, long timeout_ms, void *userp);
static inline CURLMcode ccurl_multi_setopt_socket_callback(CURLM *multi, ccurl_socket_callback callback) {
    return curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, callback);
}
static inline CURLMcode ccurl_multi_setopt_timer_callback(CURLM *multi, ccurl_timer_callback callback) {
    return curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, callback);
}
static inline CURLMcode ccurl_multi_setopt_pointer(CURLM *multi, CURLMoption option, void *value) {
    return curl_multi_setopt(multi, option, value);
}

// epoll and eventfd for that loop. struct epoll_event is packed on x86-64, so its fields are
// only touched here.
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <errno.h>
#include <unistd.h>
#include <stdint.h>
static inline int ccurl_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }
// Watches `fd` for reading (what & 1) and/or writing (what & 2); what == 0 stops watching.
static inline int ccurl_epoll_watch(int epoll, int fd, int what, int known) {
    struct epoll_event event = {0};
    event.data.fd = fd;
    if (what & 1) event.events |= EPOLLIN;
    if (what & 2) event.events |= EPOLLOUT;
    if (what == 0) return epoll_ctl(epoll, EPOLL_CTL_DEL, fd, &event);
    int result = epoll_ctl(epoll, known ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &event);
    if (result != 0 && errno == ENOENT) result = epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event);
    if (result != 0 && errno == EEXIST) result = epoll_ctl(epoll, EPOLL_CTL_MOD, fd, &event);
    return result;
}
// Waits for events; fills fds[i] and flags[i] with CURL_CSELECT_IN/OUT/ERR bits. Returns the
// count, 0 on timeout, -1 on error (EINTR included).
static inline int ccurl_epoll_wait(int epoll, int *fds, int *flags, int capacity, int timeout_ms) {
    struct epoll_event events[256];
    if (capacity > 256) capacity = 256;
    int count = epoll_wait(epoll, events, capacity, timeout_ms);
    for (int i = 0; i < count; i++) {
        fds[i] = events[i].data.fd;
        int bits = 0;
        if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLRDHUP)) bits |= CURL_CSELECT_IN;
        if (events[i].events & EPOLLOUT) bits |= CURL_CSELECT_OUT;
        if (events[i].events & EPOLLERR) bits |= CURL_CSELECT_ERR;
        flags[i] = bits;
    }
    return count;
}
static inline int ccurl_eventfd_create(void) { return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); }
static inline void ccurl_eventfd_signal(int fd) { uint64_t one = 1; (void)!write(fd, &one, sizeof one); }
static inline void ccurl_eventfd_drain(int fd) { uint64_t count; (void)!read(fd, &count, sizeof count); }
static inline void ccurl_close(int fd) { close(fd); }
static const curl_socket_t ccurl_socket_timeout = CURL_SOCKET_TIMEOUT;
#endif
