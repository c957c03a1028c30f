// libpcap for DNS capture on the session's veth and for nflog:N denial records.
#include <pcap/pcap.h>
