/*
 * Out-of-line copies of DPDK's static-inline fast-path functions, so Rust
 * can call them. Each is a one-line forward; DPDK's own cflags (from
 * pkg-config) make them compile exactly as in a C application.
 */
#include "wrapper.h"

uint16_t oxvs_rte_eth_rx_burst(uint16_t port_id, uint16_t queue_id,
                               struct rte_mbuf **rx_pkts, uint16_t nb_pkts)
{
    return rte_eth_rx_burst(port_id, queue_id, rx_pkts, nb_pkts);
}

uint16_t oxvs_rte_eth_tx_burst(uint16_t port_id, uint16_t queue_id,
                               struct rte_mbuf **tx_pkts, uint16_t nb_pkts)
{
    return rte_eth_tx_burst(port_id, queue_id, tx_pkts, nb_pkts);
}

struct rte_mbuf *oxvs_rte_pktmbuf_alloc(struct rte_mempool *mp)
{
    return rte_pktmbuf_alloc(mp);
}

int oxvs_rte_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs,
                                unsigned count)
{
    return rte_pktmbuf_alloc_bulk(mp, mbufs, count);
}

/* Frees every segment of the chain. */
void oxvs_rte_pktmbuf_free(struct rte_mbuf *m)
{
    rte_pktmbuf_free(m);
}

void oxvs_rte_pktmbuf_reset(struct rte_mbuf *m)
{
    rte_pktmbuf_reset(m);
}

uint16_t oxvs_rte_mbuf_refcnt_update(struct rte_mbuf *m, int16_t value)
{
    return rte_mbuf_refcnt_update(m, value);
}

int oxvs_rte_pktmbuf_linearize(struct rte_mbuf *m)
{
    return rte_pktmbuf_linearize(m);
}

uint16_t oxvs_rte_pktmbuf_data_room_size(struct rte_mempool *mp)
{
    return rte_pktmbuf_data_room_size(mp);
}

int oxvs_rte_errno(void)
{
    return rte_errno;
}

unsigned oxvs_rte_lcore_id(void)
{
    return rte_lcore_id();
}

/* The per-mbuf private area size of a pktmbuf pool. */
uint16_t oxvs_rte_pktmbuf_priv_size(struct rte_mempool *mp)
{
    return rte_pktmbuf_priv_size(mp);
}
