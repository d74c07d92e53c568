//! The answers' kernel arrival stamps: how they are taken ([`kernel`], Linux), and how
//! they were judged, a type shared by the stage that judges them (`send::arrival`) and
//! those that count and tell (`record`, `report`).

use serde::Serialize;

/// How one answer's kernel arrival stamp was judged (see `send::arrival`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stamp {
    /// Not read after a held sleep its request was sent before: nothing to check.
    Unchecked,
    /// Stamped before the wake-up that read it.
    OnTime,
    /// Unstamped, or stamped after the wake-up that read it.
    Late,
    /// Read after the worker stopped holding its sleeps: timed as read, on arrival.
    Unheld,
}

/// One target's answers (warm-up included: the check is about the kernel, not the
/// service) by how their arrival stamps were judged. Counts add up across workers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct StampCounts {
    /// Answers read after a held sleep their request was sent before.
    pub checked: u64,
    /// Of those, stamped after that sleep ended, or not at all.
    pub late: u64,
    /// Answers read after their worker stopped holding its sleeps.
    pub unheld: u64,
    /// Answers the dispatcher read itself, in the wake-up that sent the next requests
    /// (`send::reap`); the rest were read by their connection's task.
    #[serde(default)]
    pub read_at_send: u64,
    /// Answers stamped before their request was sent: no receipt time (the wall clock
    /// stepped, or the clocks' offset was wrong), so timed when read.
    #[serde(default)]
    pub before_send: u64,
}

impl StampCounts {
    #[inline]
    pub fn count(&mut self, s: Stamp) {
        match s {
            Stamp::Unchecked => {}
            Stamp::OnTime => self.checked += 1,
            Stamp::Late => {
                self.checked += 1;
                self.late += 1;
            }
            Stamp::Unheld => self.unheld += 1,
        }
    }

    pub fn merge(&mut self, o: &StampCounts) {
        self.checked += o.checked;
        self.late += o.late;
        self.unheld += o.unheld;
        self.read_at_send += o.read_at_send;
        self.before_send += o.before_send;
    }
}

/// Taking the stamps (Linux): `SO_TIMESTAMPNS` on a socket, and reads that return the
/// arrival time of what they read. Used by every plain connection's reads, and by the
/// benches' timed floor, which must pay exactly what loadgen pays for them.
#[cfg(target_os = "linux")]
pub mod kernel {
    use std::io;
    use std::mem::MaybeUninit;
    use std::os::fd::RawFd;

    /// Asks the kernel to stamp each segment's arrival on socket `fd`. Failure leaves
    /// reads unstamped, and their answers timed when read.
    pub fn enable(fd: RawFd) {
        let on: libc::c_int = 1;
        // SAFETY: a socket descriptor and a c_int option value of the right size; a bad
        // descriptor is an error return, not undefined behaviour.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_TIMESTAMPNS,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
    }

    /// `recvmsg` into `buf`; returns the bytes read and the arrival stamp (realtime ns) of the
    /// last segment they came from, if the kernel attached one.
    #[inline]
    pub fn recv_stamped(fd: RawFd, buf: &mut [MaybeUninit<u8>]) -> io::Result<(usize, u64)> {
        // u64-aligned room for one timespec control message and then some.
        let mut control = [0u64; 8];
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: zeroed msghdr is a valid empty header; every pointer set below outlives the
        // call, and the lengths are those of the buffers they point to.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control) as _;
        // SAFETY: `msg` describes valid, writable buffers (see above).
        let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_DONTWAIT) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut stamp = 0u64;
        // SAFETY: the CMSG_* walk stays inside `control`, bounded by msg_controllen as the
        // kernel set it; the data of an SCM_TIMESTAMPNS message is one timespec.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&msg);
            while !c.is_null() {
                if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                    let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                    stamp = ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64;
                }
                c = libc::CMSG_NXTHDR(&msg, c);
            }
        }
        Ok((n as usize, stamp))
    }
}
