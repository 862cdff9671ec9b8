// Declarations Glibc does not export to Swift.
#include <sys/epoll.h>
#include <netinet/tcp.h>
