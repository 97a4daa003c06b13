//! Host tests of the manifest parser: good manifests, and bad ones named by
//! line and key.
use super::*;

#[test]
fn heap_limit_is_optional_and_checked_against_memory() {
    let m = parse(&GOOD.replace("vcpus = 2", "vcpus = 2\nheap = 48")).unwrap();
    assert_eq!(m.resources.heap, Some(HeapMib(48)));
    assert_eq!(parse(GOOD).unwrap().resources.heap, None);
    let e = parse(&GOOD.replace("vcpus = 2", "vcpus = 2\nheap = 64")).unwrap_err();
    assert!(
        e.starts_with("image.toml:9:1: heap = 64 MiB must be below memory = 64 MiB"),
        "{e}"
    );
    let e = parse(&GOOD.replace("vcpus = 2", "vcpus = 2\nheap = 0")).unwrap_err();
    assert!(
        e.starts_with("image.toml:9:8: heap = 0 MiB is out of range"),
        "{e}"
    );
}

fn parse(text: &str) -> Result<Manifest, String> {
    Manifest::parse(Path::new("image.toml"), text).map_err(|e| e.to_string())
}

const GOOD: &str = "spec = 1\n[image]\napp = \"hello\"\nmode = \"pvh\"\ncmdline = \"a b\"\n[resources]\nmemory = 64\nvcpus = 2\n";

/// A manifest with every section, for the mutation property below.
const FULL: &str = "spec = 1\n[image]\napp = \"echo\"\nmode = \"pv\"\ncmdline = \"ip=dhcp\"\n[resources]\nmemory = 32\nvcpus = 1\nheap = 8\n[network]\nbridge = \"xenbr0\"\nmac = \"00:16:3e:00:00:01\"\nip = \"10.0.0.2/24\"\ngateway = \"10.0.0.1\"\n[[disk]]\npath = \"data.img\"\nsize = 16\nvdev = \"xvda\"\n";

#[test]
fn the_full_manifest_is_good() {
    let m = parse(FULL).unwrap();
    assert_eq!((m.disks.len(), m.network.is_some()), (1, true));
}

proptest::proptest! {
    /// Any text: read or refused with an error that names the file
    /// (and, for what TOML could parse, the line) — never a panic.
    #[test]
    fn any_text_is_read_or_refused_with_its_place(text in "(?s).{0,300}") {
        if let Err(e) = parse(&text) {
            proptest::prop_assert!(e.starts_with("image.toml"), "{e}");
        }
    }

    /// A complete manifest with one character changed: the same.
    #[test]
    fn a_mutated_manifest_is_read_or_refused_with_its_place(at in 0usize..400, c in proptest::char::any()) {
        let mut chars: Vec<char> = FULL.chars().collect();
        let at = at % chars.len();
        chars[at] = c;
        let text: String = chars.into_iter().collect();
        if let Err(e) = parse(&text) {
            proptest::prop_assert!(e.starts_with("image.toml"), "{e}");
        }
    }
}

#[test]
fn reads_a_complete_manifest() {
    let m = parse(GOOD).unwrap();
    assert_eq!(m.image.app.0, "hello");
    assert_eq!(m.image.mode, Mode::Pvh);
    assert_eq!(m.image.cmdline.0, "a b");
    assert_eq!((m.resources.memory.0, m.resources.vcpus.0), (64, 2));
    assert_eq!(m.network, None);
}

#[test]
fn the_repository_manifest_is_valid() {
    let text = include_str!("../../../image.toml");
    let m = parse(text).unwrap();
    assert_eq!(m.image.app.0, "hello");
}

#[test]
fn defaults_apply_to_missing_resources() {
    let m = parse("spec = 1\n[image]\napp = \"hello\"\nmode = \"pv\"\n").unwrap();
    assert_eq!((m.resources.memory.0, m.resources.vcpus.0), (32, 1));
    assert_eq!(m.image.cmdline.0, "");
}

#[test]
fn unknown_keys_name_line_and_column() {
    let e = parse("spec = 1\n[image]\napp = \"hello\"\nmode = \"pv\"\nmemroy = 3\n").unwrap_err();
    assert!(
        e.starts_with("image.toml:5:1: unknown field `memroy`"),
        "{e}"
    );
    let e = parse("spec = 1\n[image]\napp = \"hello\"\nmode = \"pv\"\n[extra]\n").unwrap_err();
    assert!(e.starts_with("image.toml:5:"), "{e}");
    assert!(e.contains("unknown field `extra`"), "{e}");
}

#[test]
fn bad_values_name_line_and_column() {
    let e = parse(&GOOD.replace("memory = 64", "memory = 0")).unwrap_err();
    assert!(
        e.starts_with("image.toml:7:10: memory = 0 MiB is out of range"),
        "{e}"
    );
    let e = parse(&GOOD.replace("\"pvh\"", "\"hvm\"")).unwrap_err();
    assert!(
        e.starts_with("image.toml:4:8: unknown variant `hvm`"),
        "{e}"
    );
    let e = parse(&GOOD.replace("spec = 1", "spec = 2")).unwrap_err();
    assert!(
        e.starts_with("image.toml:1:8: unsupported spec version 2"),
        "{e}"
    );
    let e = parse(&GOOD.replace("\"hello\"", "\"Hello World\"")).unwrap_err();
    assert!(e.starts_with("image.toml:3:7: invalid app name"), "{e}");
    let e = parse(&GOOD.replace("vcpus = 2", "vcpus = \"two\"")).unwrap_err();
    assert!(e.starts_with("image.toml:8:9:"), "{e}");
    let e = parse(&GOOD.replace("\"a b\"", "\"say \\\"hi\\\"\"")).unwrap_err();
    assert!(
        e.starts_with("image.toml:5:11: cmdline must not contain quotes"),
        "{e}"
    );
}

#[test]
fn missing_spec_or_section_is_an_error() {
    let e = parse("[image]\napp = \"hello\"\nmode = \"pv\"\n").unwrap_err();
    assert!(e.contains("missing field `spec`"), "{e}");
    let e = parse("spec = 1\n").unwrap_err();
    assert!(e.contains("missing field `image`"), "{e}");
}

#[test]
fn syntax_errors_are_located() {
    let e = parse("spec = 1\n[image\n").unwrap_err();
    assert!(e.starts_with("image.toml:2:"), "{e}");
}

#[test]
fn network_section() {
    let net = "[network]\nbridge = \"xenbr0\"\nmac = \"00:16:3e:00:00:01\"\nip = \"10.0.0.2/24\"\ngateway = \"10.0.0.1\"\n";
    let m = parse(&format!("{GOOD}{net}")).unwrap();
    let n = m.network.unwrap();
    assert_eq!(n.mac.unwrap().to_string(), "00:16:3e:00:00:01");
    assert_eq!(n.ip, IpConfig::Static(Ipv4Addr::new(10, 0, 0, 2), 24));
    let e = parse(&format!(
        "{GOOD}{}",
        net.replace("00:16:3e:00:00:01", "01:16:3e:00:00:01")
    ))
    .unwrap_err();
    assert!(e.starts_with("image.toml:11:7: MAC address"), "{e}");
    let e = parse(&format!("{GOOD}{}", net.replace("10.0.0.2/24", "10.0.0.2"))).unwrap_err();
    assert!(e.starts_with("image.toml:12:6: invalid ip"), "{e}");
    let e = parse(&format!(
        "{GOOD}[network]\nip = \"dhcp\"\ngateway = \"10.0.0.1\"\n"
    ))
    .unwrap_err();
    assert!(
        e.starts_with("image.toml:11:1: gateway is only meaningful"),
        "{e}"
    );
}

#[test]
fn forwards_are_port_pairs_on_a_static_address() {
    let net = "[network]\nip = \"10.0.0.2/24\"\nforward = [\"8080:80\", \"2222:22\"]\n";
    let m = parse(&format!("{GOOD}{net}")).unwrap();
    let f = m.network.unwrap().forward;
    assert_eq!(
        f[0],
        Forward {
            host: 8080,
            guest: 80
        }
    );
    assert_eq!(f[1].guest, 22);
    for bad in ["\"8080\"", "\"0:80\"", "\"8080:70000\"", "\"a:b\""] {
        let e = parse(&format!("{GOOD}{}", net.replace("\"2222:22\"", bad))).unwrap_err();
        assert!(e.starts_with("image.toml:11:"), "{bad}: {e}");
        assert!(e.contains("HOST:GUEST"), "{e}");
    }
    let e = parse(&format!("{GOOD}{}", net.replace("2222:22", "8080:81"))).unwrap_err();
    assert!(
        e.starts_with("image.toml:11:1: host port 8080 is forwarded twice"),
        "{e}"
    );
    let e = parse(&format!("{GOOD}{}", net.replace("10.0.0.2/24", "dhcp"))).unwrap_err();
    assert!(e.contains("forward needs a static ip"), "{e}");
}

#[test]
fn disks_are_a_list_checked_key_by_key() {
    let d = "[[disk]]\npath = \"data.img\"\nsize = 256\nvdev = \"xvda\"\n\
             [[disk]]\npath = \"/srv/ro.img\"\nread-only = true\nvdev = \"xvdb\"\n";
    let m = parse(&format!("{GOOD}{d}")).unwrap();
    assert_eq!(m.disks.len(), 2);
    assert_eq!(m.disks[0].size, Some(DiskMib(256)));
    assert_eq!(m.disks[0].format, DiskFormat::Raw);
    assert!(!m.disks[0].read_only && m.disks[1].read_only);
    assert_eq!(
        m.disks[0].file(Path::new("/p")),
        PathBuf::from("/p/data.img")
    );
    assert_eq!(
        m.disks[1].file(Path::new("/p")),
        PathBuf::from("/srv/ro.img")
    );
    assert_eq!(
        m.disks[1].xl_entry("/dev/vdb"),
        "format=raw,vdev=xvdb,access=ro,target=/dev/vdb"
    );
    let e = parse(&format!("{GOOD}{}", d.replace("xvdb", "xvda"))).unwrap_err();
    assert!(
        e.starts_with("image.toml:16:1: vdev \"xvda\" is given to two disks"),
        "{e}"
    );
    let e = parse(&format!("{GOOD}{}", d.replace("xvdb", "sdb"))).unwrap_err();
    assert!(e.starts_with("image.toml:16:8: invalid vdev"), "{e}");
    let e = parse(&format!("{GOOD}{}", d.replace("256", "0"))).unwrap_err();
    assert!(e.starts_with("image.toml:11:8: size = 0 MiB"), "{e}");
    let e = parse(&format!("{GOOD}{}", d.replace("data.img", "a,b.img"))).unwrap_err();
    assert!(e.starts_with("image.toml:10:8: invalid disk path"), "{e}");
    let e = parse(&format!(
        "{GOOD}{}",
        d.replace("size = 256", "format = \"qcow2\"")
    ))
    .unwrap_err();
    assert!(
        e.starts_with("image.toml:11:10: unknown variant `qcow2`"),
        "{e}"
    );
    let e = parse(&format!("{GOOD}{}", d.replace("read-only", "readonly"))).unwrap_err();
    assert!(e.contains("unknown field `readonly`"), "{e}");
}

#[test]
fn line_col_counts_from_one() {
    assert_eq!(line_col("ab\ncd", 0), (1, 1));
    assert_eq!(line_col("ab\ncd", 4), (2, 2));
    assert_eq!(line_col("ab", 99), (1, 3));
}
