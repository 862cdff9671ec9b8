// Linux declarations Glibc does not export to Swift: epoll, eventfd and TCP options, for the
// gateway's reactors (Sources/TapperGateway/Reactor).
#ifndef TAPPER_CEPOLL_SHIM_H
#define TAPPER_CEPOLL_SHIM_H
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

// glibc declares accept4 only with _GNU_SOURCE, which the Glibc module is built without.
int accept4(int fd, struct sockaddr *addr, socklen_t *addrlen, int flags);
#endif
