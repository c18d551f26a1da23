//! Prints a few traces (a quick look at the explanation format).
use ofproto::{Ofproto, PortConfig, VlanMode};

fn main() {
    let o = Ofproto::new("br0");
    o.add_port(PortConfig::new("p1", 11).with_ofport(1))
        .unwrap();
    o.add_port(
        PortConfig::new("p2", 12)
            .with_ofport(2)
            .with_vlan(VlanMode::Access(10)),
    )
    .unwrap();
    o.add_flows(
        "table=0,priority=10,in_port=1,actions=load:0x2->NXM_NX_REG0[],resubmit(,1),output:2\n\
         table=1,priority=10,reg0=2,tcp,actions=mod_nw_dst:10.9.9.9,dec_ttl,goto_table:2\n\
         table=2,priority=10,actions=NORMAL\n",
        0,
    )
    .unwrap();
    print!(
        "{}",
        o.trace(
            "in_port=1,tcp,nw_dst=10.0.0.7,nw_ttl=64,tp_dst=80,dl_dst=ff:ff:ff:ff:ff:ff",
            0
        )
        .unwrap()
    );
}
