//! Linux: listening TCP sockets from /proc, with no lsof or netlink. A
//! socket is known by its inode: `/proc/<pid>/net/tcp` and `tcp6` list the
//! sockets of that process's network namespace with their state, address
//! and inode, and `/proc/<pid>/fd/*` links name the inodes (`socket:[N]`)
//! a process holds. Joining the two says which process listens where.

use std::fs;
use std::io::{self, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{Listening, Pid};

/// The state /proc/net/tcp gives a listening socket (`TCP_LISTEN`).
const LISTEN: &str = "0A";

/// The listening TCP sockets (IPv4 and IPv6) of the network namespace
/// `pid` is in: read through the process, since /proc/net/tcp is only the
/// reader's own namespace. A table the kernel does not have (no IPv6) is
/// empty; a process that is gone is an error.
pub fn listening_sockets(pid: Pid) -> io::Result<Vec<Listening>> {
    let mut found = Vec::new();
    for (table, v6) in [("tcp", false), ("tcp6", true)] {
        match read_table(&format!("/proc/{pid}/net/{table}")) {
            Ok(text) => found.extend(text.lines().skip(1).filter_map(|l| parse_line(l, v6))),
            Err(err) if v6 && err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(err),
        }
    }
    Ok(found)
}

/// Reads a socket table in large pieces: the kernel walks its whole
/// connection table again for every read, so the small first reads of
/// `read_to_string` cost a millisecond each.
fn read_table(path: &str) -> io::Result<String> {
    let mut file = fs::File::open(path)?;
    let mut text = Vec::new();
    let mut chunk = vec![0u8; 256 * 1024];
    loop {
        match file.read(&mut chunk)? {
            0 => break,
            n => text.extend_from_slice(&chunk[..n]),
        }
    }
    String::from_utf8(text).map_err(|err| io::Error::new(io::ErrorKind::InvalidData, err))
}

/// One line of /proc/net/tcp[6], if it is a listening socket:
/// `sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ...`.
fn parse_line(line: &str, v6: bool) -> Option<Listening> {
    let fields: Vec<&str> = line.split_ascii_whitespace().collect();
    if *fields.get(3)? != LISTEN {
        return None;
    }
    let (address, port) = fields.get(1)?.split_once(':')?;
    let address = if v6 {
        IpAddr::V6(parse_v6(address)?)
    } else {
        IpAddr::V4(parse_v4(address)?)
    };
    Some(Listening {
        port: u16::from_str_radix(port, 16).ok()?,
        address,
        inode: fields.get(9)?.parse().ok()?,
    })
}

/// The kernel prints the address's bytes (network order) as one native
/// 32-bit number: its native bytes are the address.
fn parse_v4(hex: &str) -> Option<Ipv4Addr> {
    let word = u32::from_str_radix(hex, 16).ok()?;
    (hex.len() == 8).then(|| Ipv4Addr::from(word.to_ne_bytes()))
}

/// Four such numbers, one per 32-bit word of the address.
fn parse_v6(hex: &str) -> Option<Ipv6Addr> {
    if hex.len() != 32 {
        return None;
    }
    let mut bytes = [0u8; 16];
    for (i, chunk) in bytes.chunks_exact_mut(4).enumerate() {
        let word = u32::from_str_radix(hex.get(i * 8..i * 8 + 8)?, 16).ok()?;
        chunk.copy_from_slice(&word.to_ne_bytes());
    }
    Some(Ipv6Addr::from(bytes))
}

/// The inodes of the sockets `pid` holds open. Another user's process
/// cannot be read: it holds none, as far as we can tell.
pub fn socket_inodes(pid: Pid) -> Vec<u64> {
    let Ok(entries) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| {
            let target = fs::read_link(entry.ok()?.path()).ok()?;
            let target = target.to_str()?;
            target
                .strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()
        })
        .collect()
}

/// Which network namespace `pid` is in (its inode), so that each
/// namespace's tables are read once; `None` if that cannot be read.
pub fn net_namespace(pid: Pid) -> Option<u64> {
    let target = fs::read_link(format!("/proc/{pid}/ns/net")).ok()?;
    let target = target.to_str()?;
    target
        .strip_prefix("net:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_endian = "little")] // the sample lines are a little-endian kernel's
    fn listening_lines_are_read_and_others_skipped() {
        let v4 = "   1: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 424242 1 0000000000000000 100 0 0 10 0";
        let l = parse_line(v4, false).expect("a listening line");
        assert_eq!((l.port, l.inode), (8080, 424242));
        assert_eq!(l.address, IpAddr::V4(Ipv4Addr::LOCALHOST));
        let established = v4.replacen(" 0A ", " 01 ", 1);
        assert!(parse_line(&established, false).is_none());
        let v6 = "   0: 00000000000000000000000001000000:0BB8 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 77 1 0000000000000000 100 0 0 10 0";
        let l = parse_line(v6, true).expect("a listening v6 line");
        assert_eq!((l.port, l.inode), (3000, 77));
        assert_eq!(l.address, IpAddr::V6(Ipv6Addr::LOCALHOST));
    }
}
