//! What a client's packet means to the proxy: pure classification of
//! decoded payloads, tested without sockets. The proxy ([`super`]) decides
//! what to do with each [`Kind`].

use kinspect_rsp::reply::is_stop_reply;

/// A client packet, as far as the proxy cares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `c`, `C`, `s`, `S`, `vCont;...`: lets the machine run; the stop
    /// reply comes when it stops.
    Resume,
    /// `?`: why the machine is halted. Answered by the proxy (QEMU 7.2
    /// removes the current hart's breakpoints on `?`, which would take
    /// other clients' breakpoints away).
    Why,
    /// `QStartNoAckMode`: no-ack mode for this client only.
    NoAck,
    /// `qkinspect.Stops`: the proxy's run state and stop count.
    Stops,
    /// `qkinspect.Wait`: wait for the next stop of a run another client
    /// started.
    Wait,
    /// `D`, `D;PID`: this client leaves.
    Detach,
    /// `k`, `vKill;PID`: never sent to QEMU (it would exit); this client
    /// leaves.
    Kill,
    /// `Z<type>,<addr>,<kind>`: the text after `Z`, to remove it with `z`
    /// when the client leaves.
    Insert(String),
    /// `z<type>,<addr>,<kind>`: the text after `z`.
    Remove(String),
    /// `Hg<thread>` or `Hc<thread>`: which (`g`/`c`) and the thread, as sent.
    SelectThread(u8, String),
    /// `Qqemu.PhyMemMode:0|1`.
    PhysMode(bool),
    /// `qSupported...`: forwarded, and the reply gets the proxy's own
    /// features added.
    Supported,
    /// `qRcmd,...`: the reply is `O` packets, then the end.
    Monitor,
    /// Anything else: forwarded as is, one reply.
    Plain,
}

/// What the packet `p` is.
pub fn classify(p: &[u8]) -> Kind {
    match p {
        b"?" => Kind::Why,
        b"QStartNoAckMode" => Kind::NoAck,
        b"qkinspect.Stops" => Kind::Stops,
        b"qkinspect.Wait" => Kind::Wait,
        b"Qqemu.PhyMemMode:1" => Kind::PhysMode(true),
        b"Qqemu.PhyMemMode:0" => Kind::PhysMode(false),
        b"k" => Kind::Kill,
        _ if p.starts_with(b"vKill") => Kind::Kill,
        [b'D'] => Kind::Detach,
        [b'D', b';', ..] => Kind::Detach,
        _ if p.starts_with(b"vCont;") => Kind::Resume,
        [b'c' | b's', ..] => Kind::Resume,
        [b'C' | b'S', a, b, ..] if a.is_ascii_hexdigit() && b.is_ascii_hexdigit() => Kind::Resume,
        [b'Z', rest @ ..] => Kind::Insert(String::from_utf8_lossy(rest).into_owned()),
        [b'z', rest @ ..] => Kind::Remove(String::from_utf8_lossy(rest).into_owned()),
        [b'H', which @ (b'g' | b'c'), rest @ ..] => {
            Kind::SelectThread(*which, String::from_utf8_lossy(rest).into_owned())
        }
        _ if p.starts_with(b"qSupported") => Kind::Supported,
        _ if p.starts_with(b"qRcmd,") => Kind::Monitor,
        _ => Kind::Plain,
    }
}

/// The features the proxy adds to QEMU's `qSupported` reply: no-ack mode
/// (which it negotiates with each client itself) and its own queries.
pub fn supported_reply(upstream: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(upstream);
    let mut items: Vec<&str> = text
        .split(';')
        .filter(|f| !f.is_empty() && !f.starts_with("QStartNoAckMode"))
        .collect();
    items.push("QStartNoAckMode+");
    items.push("qkinspect.Stops+");
    items.join(";").into_bytes()
}

/// The `thread:` of a stop reply, as sent (`p01.02`).
pub fn stop_thread(stop: &[u8]) -> Option<String> {
    if !is_stop_reply(stop) || stop[0] != b'T' {
        return None;
    }
    let text = std::str::from_utf8(&stop[3..]).ok()?;
    text.split(';')
        .find_map(|kv| kv.strip_prefix("thread:"))
        .map(str::to_string)
}

/// Whether a stop reply is the one an interrupt (0x03) produces:
/// `T02`/`S02`, SIGINT.
pub fn is_interrupt_stop(stop: &[u8]) -> bool {
    matches!(stop, [b'T' | b'S', b'0', b'2', ..])
}

/// Whether the machine is gone (`W`/`X`).
pub fn is_exit(stop: &[u8]) -> bool {
    is_stop_reply(stop) && matches!(stop[0], b'W' | b'X')
}

/// The answer to `?` when the machine is halted: QEMU's own form,
/// `T05thread:THREAD;`.
pub fn why_reply(thread: Option<&str>) -> Vec<u8> {
    match thread {
        Some(t) => format!("T05thread:{t};").into_bytes(),
        None => b"S05".to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gdb_and_kinspect_packets() {
        assert_eq!(classify(b"vCont;c"), Kind::Resume);
        assert_eq!(classify(b"vCont;s:p1.1"), Kind::Resume);
        assert_eq!(classify(b"c"), Kind::Resume);
        assert_eq!(classify(b"s"), Kind::Resume);
        assert_eq!(classify(b"C05"), Kind::Resume);
        assert_eq!(classify(b"vCont?"), Kind::Plain);
        assert_eq!(classify(b"?"), Kind::Why);
        assert_eq!(classify(b"D;1"), Kind::Detach);
        assert_eq!(classify(b"D"), Kind::Detach);
        assert_eq!(classify(b"k"), Kind::Kill);
        assert_eq!(classify(b"vKill;1"), Kind::Kill);
        assert_eq!(
            classify(b"Z0,80001234,4"),
            Kind::Insert("0,80001234,4".into())
        );
        assert_eq!(
            classify(b"z0,80001234,4"),
            Kind::Remove("0,80001234,4".into())
        );
        assert_eq!(classify(b"Hgp1.2"), Kind::SelectThread(b'g', "p1.2".into()));
        assert_eq!(classify(b"Hc-1"), Kind::SelectThread(b'c', "-1".into()));
        assert_eq!(classify(b"Qqemu.PhyMemMode:1"), Kind::PhysMode(true));
        assert_eq!(classify(b"qqemu.PhyMemMode"), Kind::Plain);
        assert_eq!(
            classify(b"qSupported:multiprocess+;vContSupported+"),
            Kind::Supported
        );
        assert_eq!(classify(b"qRcmd,696e666f206d656d"), Kind::Monitor);
        assert_eq!(classify(b"m80000000,10"), Kind::Plain);
        assert_eq!(classify(b"qkinspect.Stops"), Kind::Stops);
        assert_eq!(classify(b"QStartNoAckMode"), Kind::NoAck);
    }

    #[test]
    fn supported_gains_no_ack_and_the_proxy_query() {
        assert_eq!(
            supported_reply(b"PacketSize=1000;qXfer:features:read+;vContSupported+;multiprocess+"),
            b"PacketSize=1000;qXfer:features:read+;vContSupported+;multiprocess+;QStartNoAckMode+;qkinspect.Stops+"
        );
        // A newer QEMU that has no-ack mode itself: named once.
        assert_eq!(
            supported_reply(b"PacketSize=1000;QStartNoAckMode+"),
            b"PacketSize=1000;QStartNoAckMode+;qkinspect.Stops+"
        );
    }

    #[test]
    fn stop_replies() {
        assert_eq!(
            stop_thread(b"T05thread:p01.02;swbreak:;").as_deref(),
            Some("p01.02")
        );
        assert_eq!(stop_thread(b"T02thread:01;").as_deref(), Some("01"));
        assert_eq!(stop_thread(b"S05"), None);
        assert_eq!(stop_thread(b"OK"), None);
        assert!(is_interrupt_stop(b"T02thread:p01.01;"));
        assert!(!is_interrupt_stop(b"T05thread:p01.01;"));
        assert!(is_exit(b"W00"));
        assert!(!is_exit(b"T05"));
        assert_eq!(why_reply(Some("p01.03")), b"T05thread:p01.03;");
    }
}
