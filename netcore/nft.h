/* The lab's nftables table (bridge family) through libnftnl + libmnl.
 *
 *   table bridge provium {
 *     set drop_pairs { type ifname . ifname }   # both orders of a symmetric partition
 *     set isolated   { type ifname }
 *     set oneway     { type ifname . ifname }   # directional partitions
 *     map prio       { type ifname . ifname : classid }  # per-pair shaping class
 *     chain forward { type filter hook forward priority 0; policy accept;
 *       iifname . oifname @drop_pairs drop
 *       iifname @isolated drop
 *       oifname @isolated drop
 *       meta protocol arp accept                      # address resolution is exempt
 *       (icmpv6 types 133..137) accept                #   from directional drops only
 *       iifname . oifname @oneway drop
 *       meta priority set iifname . oifname map @prio
 *     }
 *   }
 *
 * Every change is one atomic batch that adds and deletes only the elements
 * that differ from what was last applied. */
#ifndef PV_NFT_H
#define PV_NFT_H

#include <stddef.h>
#include <stdint.h>

#include "netcore/err.h"

#define PV_NFT_TABLE "provium"

struct pv_nft;

struct pv_nft_pair {
	char in[16], out[16]; /* bridge port ifnames */
};

struct pv_nft_prio {
	struct pv_nft_pair pair;
	uint32_t classid; /* tc handle, e.g. 0x00010010 for 1:10 */
};

/* The whole desired content of the sets. Arrays are owned by the caller;
 * duplicates are allowed and ignored. */
struct pv_nft_state {
	const struct pv_nft_pair *drop;   size_t n_drop;
	const struct pv_nft_pair *oneway; size_t n_oneway;
	const char (*isolated)[16];       size_t n_isolated;
	const struct pv_nft_prio *prio;   size_t n_prio;
};

/* Create (or replace) the table in the calling thread's network namespace. */
int pv_nft_open(struct pv_nft **out, struct pv_err *err);

/* Bring the sets to `want` in one batch. On failure nothing changed, in the
 * kernel or in the handle's record of what is applied. */
int pv_nft_apply(struct pv_nft *n, const struct pv_nft_state *want, struct pv_err *err);

/* Delete the table (if `destroy`) and free the handle. */
void pv_nft_close(struct pv_nft *n, int destroy);

#endif
