//! A cap on mesh connections per address. libp2p's own limits count connections in all and per
//! peer id, but peer ids are free: one machine with fresh keys could take every inbound slot.
//! This behaviour counts inbound connections, pending and established, by the address they
//! come from ([`crate::addresses::network_of`]: the IPv4 address, or the IPv6 /64) and refuses
//! the ones past the cap. Outbound connections (this node's own dials) are not counted.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::IpAddr;
use std::task::{Context, Poll};

use libp2p::core::transport::PortUse;
use libp2p::core::{ConnectedPoint, Endpoint};
use libp2p::swarm::{
    dummy, ConnectionClosed, ConnectionDenied, ConnectionId, FromSwarm, ListenFailure,
    NetworkBehaviour, THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId};

use crate::addresses::{ip_of, network_of};

/// The count of inbound connections per address, as plain data.
#[derive(Debug, Default)]
pub struct AddressCounts {
    max: u32,
    /// Each counted connection and the address it counts under.
    conns: HashMap<ConnectionId, IpAddr>,
    per_address: HashMap<IpAddr, u32>,
}

/// Why a connection was refused.
#[derive(Debug)]
pub struct AtAddressLimit {
    pub address: IpAddr,
    pub max: u32,
}

impl std::fmt::Display for AtAddressLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} already has {} inbound connections, the most one address may have",
            self.address, self.max
        )
    }
}

impl std::error::Error for AtAddressLimit {}

impl AddressCounts {
    pub fn new(max: u32) -> Self {
        AddressCounts {
            max,
            ..Default::default()
        }
    }

    /// Counts connection `id` from `ip`, unless its address is at the cap. Counting the same
    /// connection twice (pending, then established) is one count.
    pub fn admit(&mut self, id: ConnectionId, ip: IpAddr) -> Result<(), AtAddressLimit> {
        if self.conns.contains_key(&id) {
            return Ok(());
        }
        let address = network_of(ip);
        let count = self.per_address.entry(address).or_default();
        if *count >= self.max {
            return Err(AtAddressLimit {
                address,
                max: self.max,
            });
        }
        *count += 1;
        self.conns.insert(id, address);
        Ok(())
    }

    /// Connection `id` failed or closed (a connection never counted is ignored).
    pub fn release(&mut self, id: ConnectionId) {
        let Some(address) = self.conns.remove(&id) else {
            return;
        };
        if let Some(count) = self.per_address.get_mut(&address) {
            *count -= 1;
            if *count == 0 {
                self.per_address.remove(&address);
            }
        }
    }

    /// Inbound connections counted under `ip`'s address.
    pub fn count(&self, ip: IpAddr) -> u32 {
        self.per_address.get(&network_of(ip)).copied().unwrap_or(0)
    }
}

/// The behaviour: refuses an inbound connection whose address is at the cap, from the moment
/// it arrives (before the handshake) and again once it is established.
pub struct PerAddressLimit {
    counts: AddressCounts,
}

impl PerAddressLimit {
    pub fn new(max: u32) -> Self {
        PerAddressLimit {
            counts: AddressCounts::new(max),
        }
    }

    fn admit(&mut self, id: ConnectionId, remote: &Multiaddr) -> Result<(), ConnectionDenied> {
        match ip_of(remote) {
            Some(ip) => self.counts.admit(id, ip).map_err(ConnectionDenied::new),
            // not an IP transport (the mesh only listens on TCP): nothing to count
            None => Ok(()),
        }
    }
}

impl NetworkBehaviour for PerAddressLimit {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_pending_inbound_connection(
        &mut self,
        id: ConnectionId,
        _local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        self.admit(id, remote)
    }

    fn handle_established_inbound_connection(
        &mut self,
        id: ConnectionId,
        _peer: PeerId,
        _local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.admit(id, remote)?;
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _id: ConnectionId,
        _peer: PeerId,
        _addr: &Multiaddr,
        _role: Endpoint,
        _port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ListenFailure(ListenFailure { connection_id, .. }) => {
                self.counts.release(connection_id)
            }
            FromSwarm::ConnectionClosed(ConnectionClosed {
                connection_id,
                endpoint: ConnectedPoint::Listener { .. },
                ..
            }) => self.counts.release(connection_id),
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _peer: PeerId,
        _id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_at_most_its_share_and_gets_it_back_when_connections_end() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let mut counts = AddressCounts::new(2);
        let ids: Vec<ConnectionId> = (1..5).map(ConnectionId::new_unchecked).collect();
        counts.admit(ids[0], ip("192.0.2.1")).unwrap();
        // pending, then established: one count
        counts.admit(ids[0], ip("192.0.2.1")).unwrap();
        counts.admit(ids[1], ip("192.0.2.1")).unwrap();
        let refused = counts.admit(ids[2], ip("192.0.2.1")).unwrap_err();
        assert_eq!(refused.address, ip("192.0.2.1"));
        assert!(refused.to_string().contains("192.0.2.1"));
        // another address is counted apart; an IPv6 /64 counts as one address
        counts.admit(ids[2], ip("2001:db8:1:2::1")).unwrap();
        counts.admit(ids[3], ip("2001:db8:1:2::2")).unwrap();
        assert!(counts
            .admit(ConnectionId::new_unchecked(9), ip("2001:db8:1:2::3"))
            .is_err());
        // a dual-stack listener's IPv4 peer counts as its IPv4 address
        assert_eq!(counts.count(ip("::ffff:192.0.2.1")), 2);
        counts.release(ids[0]);
        counts.release(ids[0]);
        assert_eq!(counts.count(ip("192.0.2.1")), 1);
        counts
            .admit(ConnectionId::new_unchecked(10), ip("192.0.2.1"))
            .unwrap();
        // a connection never counted is ignored
        counts.release(ConnectionId::new_unchecked(99));
        assert_eq!(counts.count(ip("192.0.2.1")), 2);
    }
}
