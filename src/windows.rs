//! The Windows calls Bitween needs where the standard library has none,
//! each the counterpart of a Unix facility used elsewhere: files readable
//! by their owner only (mode 0600), free disk space (statvfs), whether a
//! process lives (kill 0), the IPv4 default routes (/proc/net/route), the
//! IPv6 address states (/proc/net/if_inet6), a job that kills a child
//! with us (PR_SET_PDEATHSIG) and the Run key (XDG autostart). All unsafe
//! code for Windows is here.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::windows::ffi::OsStrExt;
use std::os::windows::io::{FromRawHandle, OwnedHandle};
use std::path::Path;
use std::ptr::{null, null_mut};

use windows_sys::Win32::Foundation::{
    CloseHandle, GetLastError, LocalFree, ERROR_BUFFER_OVERFLOW, HANDLE, INVALID_HANDLE_VALUE,
    NO_ERROR, STILL_ACTIVE,
};
use windows_sys::Win32::NetworkManagement::IpHelper::{
    FreeMibTable, GetAdaptersAddresses, GetIpForwardTable2, GAA_FLAG_SKIP_ANYCAST,
    GAA_FLAG_SKIP_DNS_SERVER, GAA_FLAG_SKIP_FRIENDLY_NAME, GAA_FLAG_SKIP_MULTICAST,
    IP_ADAPTER_ADDRESSES_LH, MIB_IPFORWARD_TABLE2,
};
use windows_sys::Win32::Networking::WinSock::{
    IpDadStateDeprecated, IpDadStatePreferred, IpSuffixOriginRandom, AF_INET, AF_INET6,
    SOCKADDR_IN6,
};
use windows_sys::Win32::Security::Authorization::{
    ConvertSidToStringSidW, ConvertStringSecurityDescriptorToSecurityDescriptorW, SDDL_REVISION_1,
};
use windows_sys::Win32::Security::{
    GetTokenInformation, TokenUser, PSECURITY_DESCRIPTOR, SECURITY_ATTRIBUTES, TOKEN_QUERY,
    TOKEN_USER,
};
use windows_sys::Win32::Storage::FileSystem::{
    CreateFileW, GetDiskFreeSpaceExW, CREATE_NEW, FILE_ATTRIBUTE_NORMAL, FILE_GENERIC_READ,
    FILE_GENERIC_WRITE,
};
use windows_sys::Win32::System::JobObjects::{
    AssignProcessToJobObject, CreateJobObjectW, JobObjectExtendedLimitInformation,
    SetInformationJobObject, JOBOBJECT_EXTENDED_LIMIT_INFORMATION,
    JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE,
};
use windows_sys::Win32::System::Threading::{
    GetCurrentProcess, GetExitCodeProcess, OpenProcess, OpenProcessToken,
    PROCESS_QUERY_LIMITED_INFORMATION,
};

/// `s` as a NUL-terminated UTF-16 string.
fn wide(s: &OsStr) -> Vec<u16> {
    s.encode_wide().chain(std::iter::once(0)).collect()
}

/// A NUL-terminated UTF-16 string the system allocated, as a `String`
/// (then freed with `LocalFree`).
///
/// # Safety
/// `p` must be a valid NUL-terminated string from `LocalAlloc`.
unsafe fn take_local_wide(p: *mut u16) -> String {
    let mut len = 0;
    while *p.add(len) != 0 {
        len += 1;
    }
    let s = String::from_utf16_lossy(std::slice::from_raw_parts(p, len));
    LocalFree(p.cast());
    s
}

/// The current user's security identifier, as text (`S-1-5-21-...`).
pub fn current_user_sid() -> io::Result<String> {
    // SAFETY: every pointer passed points to a live local of the right
    // type and size; the token handle is closed by `OwnedHandle`, the SID
    // string freed by `take_local_wide`.
    unsafe {
        let mut token: HANDLE = null_mut();
        if OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &mut token) == 0 {
            return Err(io::Error::last_os_error());
        }
        let token = OwnedHandle::from_raw_handle(token);
        let mut len = 0u32;
        GetTokenInformation(
            std::os::windows::io::AsRawHandle::as_raw_handle(&token),
            TokenUser,
            null_mut(),
            0,
            &mut len,
        );
        // u64s: TOKEN_USER needs pointer alignment.
        let mut buf = vec![0u64; (len as usize).div_ceil(8).max(1)];
        if GetTokenInformation(
            std::os::windows::io::AsRawHandle::as_raw_handle(&token),
            TokenUser,
            buf.as_mut_ptr().cast(),
            (buf.len() * 8) as u32,
            &mut len,
        ) == 0
        {
            return Err(io::Error::last_os_error());
        }
        let user = &*(buf.as_ptr() as *const TOKEN_USER);
        let mut text: *mut u16 = null_mut();
        if ConvertSidToStringSidW(user.User.Sid, &mut text) == 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(take_local_wide(text))
    }
}

/// The security descriptor of a file only the current user may open: a
/// protected DACL (nothing inherited from the folder) with one entry,
/// full access for the user. In SDDL.
pub fn owner_only_sddl() -> io::Result<String> {
    Ok(format!("D:P(A;;FA;;;{})", current_user_sid()?))
}

/// Creates `path` (failing if anything exists there) with
/// [`owner_only_sddl`] as its security descriptor from the start, so no
/// other account can ever open it; opened for reading and writing.
pub fn create_owner_only(path: &Path) -> io::Result<File> {
    let sddl = wide(OsStr::new(&owner_only_sddl()?));
    let name = wide(path.as_os_str());
    // SAFETY: `sddl` and `name` are NUL-terminated and outlive the calls;
    // the descriptor is freed after CreateFileW copied it; a valid handle
    // is handed to `File`, which owns it from then on.
    unsafe {
        let mut sd: PSECURITY_DESCRIPTOR = null_mut();
        if ConvertStringSecurityDescriptorToSecurityDescriptorW(
            sddl.as_ptr(),
            SDDL_REVISION_1,
            &mut sd,
            null_mut(),
        ) == 0
        {
            return Err(io::Error::last_os_error());
        }
        let attributes = SECURITY_ATTRIBUTES {
            nLength: std::mem::size_of::<SECURITY_ATTRIBUTES>() as u32,
            lpSecurityDescriptor: sd,
            bInheritHandle: 0,
        };
        let handle = CreateFileW(
            name.as_ptr(),
            FILE_GENERIC_READ | FILE_GENERIC_WRITE,
            0,
            &attributes,
            CREATE_NEW,
            FILE_ATTRIBUTE_NORMAL,
            null_mut(),
        );
        let error = io::Error::last_os_error();
        LocalFree(sd);
        if handle == INVALID_HANDLE_VALUE {
            return Err(error);
        }
        Ok(File::from_raw_handle(handle))
    }
}

/// The current user's SID as SDDL writes it in an entry: usually the
/// full `S-1-5-21-...`, an alias such as `LA` for some accounts (found by
/// letting Windows write [`owner_only_sddl`] back).
pub fn current_user_sddl_sid() -> io::Result<String> {
    let sddl = wide(OsStr::new(&owner_only_sddl()?));
    let mut sd: PSECURITY_DESCRIPTOR = null_mut();
    // SAFETY: a NUL-terminated string and an out-pointer to a local; the
    // descriptor is handed to `dacl_sddl`, which frees it.
    let text = unsafe {
        if ConvertStringSecurityDescriptorToSecurityDescriptorW(
            sddl.as_ptr(),
            SDDL_REVISION_1,
            &mut sd,
            null_mut(),
        ) == 0
        {
            return Err(io::Error::last_os_error());
        }
        dacl_sddl(sd)?
    };
    text.rsplit(';')
        .next()
        .map(|sid| sid.trim_end_matches(')').to_string())
        .ok_or_else(|| io::Error::other(format!("an unexpected descriptor: {text}")))
}

/// The DACL of the file at `path` in SDDL.
pub fn file_dacl_sddl(path: &Path) -> io::Result<String> {
    use windows_sys::Win32::Security::Authorization::{GetNamedSecurityInfoW, SE_FILE_OBJECT};
    use windows_sys::Win32::Security::DACL_SECURITY_INFORMATION;
    let name = wide(path.as_os_str());
    // SAFETY: out-pointers to locals; the descriptor the system allocates
    // is handed to `dacl_sddl`, which frees it.
    unsafe {
        let mut sd: PSECURITY_DESCRIPTOR = null_mut();
        let rc = GetNamedSecurityInfoW(
            name.as_ptr(),
            SE_FILE_OBJECT,
            DACL_SECURITY_INFORMATION,
            null_mut(),
            null_mut(),
            null_mut(),
            null_mut(),
            &mut sd,
        );
        if rc != NO_ERROR {
            return Err(io::Error::from_raw_os_error(rc as i32));
        }
        dacl_sddl(sd)
    }
}

/// The DACL of `sd` in SDDL; frees `sd`.
///
/// # Safety
/// `sd` must be a security descriptor from `LocalAlloc`, not used after.
unsafe fn dacl_sddl(sd: PSECURITY_DESCRIPTOR) -> io::Result<String> {
    use windows_sys::Win32::Security::Authorization::ConvertSecurityDescriptorToStringSecurityDescriptorW;
    use windows_sys::Win32::Security::DACL_SECURITY_INFORMATION;
    // SAFETY: see above; the string the system allocates is freed by
    // `take_local_wide`.
    unsafe {
        let mut text: *mut u16 = null_mut();
        let ok = ConvertSecurityDescriptorToStringSecurityDescriptorW(
            sd,
            SDDL_REVISION_1,
            DACL_SECURITY_INFORMATION,
            &mut text,
            null_mut(),
        );
        let error = io::Error::last_os_error();
        LocalFree(sd);
        if ok == 0 {
            return Err(error);
        }
        Ok(take_local_wide(text))
    }
}

/// Bytes the current user may still write on the volume that holds `dir`
/// (quotas included).
pub fn available_space(dir: &Path) -> io::Result<u64> {
    let name = wide(dir.as_os_str());
    let mut free = 0u64;
    // SAFETY: a NUL-terminated path and an out-pointer to a local; the
    // other two outputs are optional.
    if unsafe { GetDiskFreeSpaceExW(name.as_ptr(), &mut free, null_mut(), null_mut()) } == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(free)
}

/// Whether process `pid` exists and has not exited. A process we may not
/// query (another user's) counts as alive.
pub fn process_alive(pid: u32) -> bool {
    // SAFETY: OpenProcess returns a handle we close, or null.
    unsafe {
        let h = OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid);
        if h.is_null() {
            // ERROR_ACCESS_DENIED: it exists; ERROR_INVALID_PARAMETER: no
            // such process.
            return GetLastError() == windows_sys::Win32::Foundation::ERROR_ACCESS_DENIED;
        }
        let mut code = 0u32;
        let ok = GetExitCodeProcess(h, &mut code);
        CloseHandle(h);
        ok == 0 || code == STILL_ACTIVE as u32
    }
}

/// Ends the process behind `handle` at once (exit code 1). Errors (it
/// already exited) are ignored.
///
/// # Safety
/// `handle` must be an open process handle for the whole call.
pub unsafe fn terminate(handle: std::os::windows::io::RawHandle) {
    windows_sys::Win32::System::Threading::TerminateProcess(handle, 1);
}

/// Creates the named mutex `name` (in the session's namespace with a
/// `Local\` prefix) and holds it open: `Ok(None)` if it already existed
/// (another process holds it), else the handle that keeps it.
pub fn claim_named_mutex(name: &str) -> io::Result<Option<OwnedHandle>> {
    use windows_sys::Win32::Foundation::ERROR_ALREADY_EXISTS;
    use windows_sys::Win32::System::Threading::CreateMutexW;
    let name = wide(OsStr::new(name));
    // SAFETY: a NUL-terminated name; the handle is owned from here on.
    unsafe {
        let h = CreateMutexW(null(), 0, name.as_ptr());
        if h.is_null() {
            return Err(io::Error::last_os_error());
        }
        let existed = GetLastError() == ERROR_ALREADY_EXISTS;
        let h = OwnedHandle::from_raw_handle(h);
        Ok((!existed).then_some(h))
    }
}

/// The key whose values Windows starts at the user's login (the
/// counterpart of an XDG autostart entry).
const RUN_KEY: &str = r"Software\Microsoft\Windows\CurrentVersion\Run";

/// Starts `command` at the user's login as `name` in the Run key of
/// `HKEY_CURRENT_USER` (replacing what `name` started before); `None`
/// removes it (nothing to remove is no error).
pub fn run_at_login(name: &str, command: Option<&str>) -> io::Result<()> {
    use windows_sys::Win32::Foundation::ERROR_FILE_NOT_FOUND;
    use windows_sys::Win32::System::Registry::{
        RegDeleteKeyValueW, RegSetKeyValueW, HKEY_CURRENT_USER, REG_SZ,
    };
    let key = wide(OsStr::new(RUN_KEY));
    let value = wide(OsStr::new(name));
    // SAFETY: NUL-terminated strings that outlive the calls; the data's
    // length is that of `data` in bytes, its NUL included.
    let rc = unsafe {
        match command {
            Some(command) => {
                let data = wide(OsStr::new(command));
                RegSetKeyValueW(
                    HKEY_CURRENT_USER,
                    key.as_ptr(),
                    value.as_ptr(),
                    REG_SZ,
                    data.as_ptr().cast(),
                    (data.len() * 2) as u32,
                )
            }
            None => match RegDeleteKeyValueW(HKEY_CURRENT_USER, key.as_ptr(), value.as_ptr()) {
                ERROR_FILE_NOT_FOUND => NO_ERROR,
                rc => rc,
            },
        }
    };
    if rc != NO_ERROR {
        return Err(io::Error::from_raw_os_error(rc as i32));
    }
    Ok(())
}

/// What `name` in the Run key starts at login, if anything.
pub fn run_at_login_command(name: &str) -> io::Result<Option<String>> {
    use windows_sys::Win32::Foundation::ERROR_FILE_NOT_FOUND;
    use windows_sys::Win32::System::Registry::{RegGetValueW, HKEY_CURRENT_USER, RRF_RT_REG_SZ};
    let key = wide(OsStr::new(RUN_KEY));
    let value = wide(OsStr::new(name));
    let mut buf = vec![0u16; 4096];
    let mut bytes = (buf.len() * 2) as u32;
    // SAFETY: NUL-terminated names; the buffer is `bytes` long.
    let rc = unsafe {
        RegGetValueW(
            HKEY_CURRENT_USER,
            key.as_ptr(),
            value.as_ptr(),
            RRF_RT_REG_SZ,
            null_mut(),
            buf.as_mut_ptr().cast(),
            &mut bytes,
        )
    };
    match rc {
        NO_ERROR => {
            let len = (bytes as usize / 2).min(buf.len());
            let text = &buf[..len];
            let end = text.iter().position(|c| *c == 0).unwrap_or(len);
            Ok(Some(String::from_utf16_lossy(&text[..end])))
        }
        ERROR_FILE_NOT_FOUND => Ok(None),
        rc => Err(io::Error::from_raw_os_error(rc as i32)),
    }
}

/// One IPv4 route to 0.0.0.0/0 through a gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DefaultRoute {
    pub gateway: Ipv4Addr,
    /// The route's own metric (the interface's is not added).
    pub metric: u32,
}

/// The IPv4 default routes with a gateway, from the routing table
/// (GetIpForwardTable2).
pub fn ipv4_default_routes() -> io::Result<Vec<DefaultRoute>> {
    let mut table: *mut MIB_IPFORWARD_TABLE2 = null_mut();
    // SAFETY: the table the call allocates is read within its NumEntries
    // and freed with FreeMibTable.
    unsafe {
        let rc = GetIpForwardTable2(AF_INET, &mut table);
        if rc != NO_ERROR {
            return Err(io::Error::from_raw_os_error(rc as i32));
        }
        let rows =
            std::slice::from_raw_parts((*table).Table.as_ptr(), (*table).NumEntries as usize);
        let routes = rows
            .iter()
            .filter(|r| r.DestinationPrefix.PrefixLength == 0 && r.NextHop.si_family == AF_INET)
            .filter_map(|r| {
                let gateway = Ipv4Addr::from(u32::from_be(r.NextHop.Ipv4.sin_addr.S_un.S_addr));
                (!gateway.is_unspecified()).then_some(DefaultRoute {
                    gateway,
                    metric: r.Metric,
                })
            })
            .collect();
        FreeMibTable(table.cast());
        Ok(routes)
    }
}

/// The state of one IPv6 address of an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6State {
    pub ip: Ipv6Addr,
    /// A privacy address (random suffix, RFC 8981).
    pub temporary: bool,
    /// Past its preferred lifetime.
    pub deprecated: bool,
    /// Duplicate address detection running or failed.
    pub unusable: bool,
}

/// Every unicast IPv6 address with its state (GetAdaptersAddresses).
pub fn ipv6_states() -> io::Result<Vec<Ipv6State>> {
    let flags = GAA_FLAG_SKIP_ANYCAST
        | GAA_FLAG_SKIP_MULTICAST
        | GAA_FLAG_SKIP_DNS_SERVER
        | GAA_FLAG_SKIP_FRIENDLY_NAME;
    let mut size = 16 * 1024u32;
    for _ in 0..4 {
        // u64s: the list needs pointer alignment.
        let mut buf = vec![0u64; (size as usize).div_ceil(8)];
        let first = buf.as_mut_ptr() as *mut IP_ADAPTER_ADDRESSES_LH;
        // SAFETY: the buffer is `size` bytes or more; the linked lists the
        // call writes live inside it and are read while it lives.
        let rc = unsafe { GetAdaptersAddresses(AF_INET6 as u32, flags, null(), first, &mut size) };
        if rc == ERROR_BUFFER_OVERFLOW {
            continue;
        }
        if rc != NO_ERROR {
            return Err(io::Error::from_raw_os_error(rc as i32));
        }
        let mut out = Vec::new();
        let mut adapter = first as *const IP_ADAPTER_ADDRESSES_LH;
        // SAFETY: see above.
        unsafe {
            while !adapter.is_null() {
                let mut a = (*adapter).FirstUnicastAddress;
                while !a.is_null() {
                    let sa = (*a).Address.lpSockaddr;
                    if !sa.is_null() && (*sa).sa_family == AF_INET6 {
                        let sa = &*(sa as *const SOCKADDR_IN6);
                        let dad = (*a).DadState;
                        out.push(Ipv6State {
                            ip: Ipv6Addr::from(sa.sin6_addr.u.Byte),
                            temporary: (*a).SuffixOrigin == IpSuffixOriginRandom,
                            deprecated: dad == IpDadStateDeprecated,
                            unusable: dad != IpDadStatePreferred && dad != IpDadStateDeprecated,
                        });
                    }
                    a = (*a).Next;
                }
                adapter = (*adapter).Next;
            }
        }
        return Ok(out);
    }
    Err(io::Error::other("the adapter list kept growing"))
}

/// A job object that kills every process in it when its last handle
/// closes, so a child put in it ends with us even if we are killed (the
/// counterpart of Linux's `PR_SET_PDEATHSIG`).
pub struct KillOnCloseJob(OwnedHandle);

impl KillOnCloseJob {
    pub fn new() -> io::Result<KillOnCloseJob> {
        // SAFETY: an anonymous job; the limit struct is a local of the
        // size passed; the handle is owned from here on.
        unsafe {
            let h = CreateJobObjectW(null(), null());
            if h.is_null() {
                return Err(io::Error::last_os_error());
            }
            let job = KillOnCloseJob(OwnedHandle::from_raw_handle(h));
            let mut info: JOBOBJECT_EXTENDED_LIMIT_INFORMATION = std::mem::zeroed();
            info.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
            if SetInformationJobObject(
                h,
                JobObjectExtendedLimitInformation,
                (&info as *const JOBOBJECT_EXTENDED_LIMIT_INFORMATION).cast(),
                std::mem::size_of::<JOBOBJECT_EXTENDED_LIMIT_INFORMATION>() as u32,
            ) == 0
            {
                return Err(io::Error::last_os_error());
            }
            Ok(job)
        }
    }

    /// Puts `child` in the job.
    pub fn assign(&self, child: &std::process::Child) -> io::Result<()> {
        use std::os::windows::io::AsRawHandle;
        // SAFETY: both handles are valid for the duration of the call.
        if unsafe { AssignProcessToJobObject(self.0.as_raw_handle(), child.as_raw_handle()) } == 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_owner_only_file_has_one_entry_for_its_user() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        let mut f = create_owner_only(&path).unwrap();
        std::io::Write::write_all(&mut f, b"x").unwrap();
        drop(f);
        assert_eq!(std::fs::read(&path).unwrap(), b"x");
        let sid = current_user_sid().unwrap();
        assert!(sid.starts_with("S-1-"), "{sid}");
        // Windows keeps the descriptor as given (`D:P(A;;FA;;;<sid>)`);
        // Wine keeps only what the Unix mode can say (0600, shown as the
        // user and SYSTEM, without the protection flag).
        let dacl = file_dacl_sddl(&path).unwrap();
        let user = current_user_sddl_sid().unwrap();
        assert!(dacl.contains(&user), "{dacl}");
        // (That such a DACL counts as private: `private_file`'s tests.)
        // Never over something that exists.
        assert!(create_owner_only(&path).is_err());
    }

    #[test]
    fn a_command_runs_at_login_until_removed() {
        let name = format!("bitween-test-{:08x}", rand::random::<u32>());
        assert_eq!(run_at_login_command(&name).unwrap(), None);
        let command = r#""C:\Program Files\Bitween\bitween.exe" --hidden"#;
        run_at_login(&name, Some(command)).unwrap();
        assert_eq!(
            run_at_login_command(&name).unwrap().as_deref(),
            Some(command)
        );
        run_at_login(&name, None).unwrap();
        assert_eq!(run_at_login_command(&name).unwrap(), None);
        // Removing what is not there is no error.
        run_at_login(&name, None).unwrap();
    }

    #[test]
    fn free_space_and_processes() {
        let dir = tempfile::tempdir().unwrap();
        assert!(available_space(dir.path()).unwrap() > 0);
        assert!(process_alive(std::process::id()));
        let mut child = std::process::Command::new("cmd.exe")
            .args(["/c", "exit"])
            .spawn()
            .unwrap();
        let pid = child.id();
        child.wait().unwrap();
        drop(child);
        assert!(!process_alive(pid));
    }

    #[test]
    fn the_routing_table_and_address_states_can_be_read() {
        for r in ipv4_default_routes().unwrap() {
            assert!(!r.gateway.is_unspecified());
        }
        let states = ipv6_states().unwrap();
        assert!(states.iter().all(|s| !s.ip.is_unspecified()));
    }
}
