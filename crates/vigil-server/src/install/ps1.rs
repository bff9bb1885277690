//! What runs on a Windows host: the PowerShell that puts `vigil.exe` in
//! place, enrolls it and starts the `VigilAgent` service, the one-line
//! command that fetches it, and the commands a push install sends over
//! Windows' OpenSSH server. Pure text generation, like [`super::script`],
//! so every value that ends up in PowerShell is quoted here and tested here.
//!
//! Windows PowerShell 5.1 (on every supported Windows) has no
//! `-SkipCertificateCheck` and no curl-style key pin, so the script and the
//! one-liner pin the agent API the .NET way: a
//! `ServerCertificateValidationCallback` that accepts exactly the
//! certificate whose DER SHA-256 is the pin agents use, restored afterwards.
//! The downloaded binary is checked against the SHA-256 the server
//! computed, so a wrong or cut-short file is never installed.
//!
//! The token is the script's only parameter (`-Token`), so the served
//! script holds no secret. Failures `throw` (never `exit`): at an
//! interactive prompt `exit` would close the window with the message.

use super::InstallError;
use base64::Engine;

/// The Windows service the agent runs as.
pub(crate) const SERVICE_NAME: &str = "VigilAgent";
/// Where the push install uploads the binary before the setup moves it
/// (an `.exe`: PowerShell starts files by their extension).
pub(crate) const UPLOAD_NAME: &str = "vigil.new.exe";
/// Run through the host's SSH shell: `sh` prints `%OS% :OS`, `cmd` prints
/// `Windows_NT $env:OS`, PowerShell prints `%OS%` and `Windows_NT`.
pub(crate) const SHELL_PROBE: &str = "echo %OS% $env:OS";

/// PowerShell expressions of the default directories.
const DEFAULT_INSTALL_DIR: &str = "(Join-Path $env:ProgramFiles 'Vigil')";
const DEFAULT_STATE_DIR: &str = "(Join-Path $env:ProgramData 'Vigil\\agent')";

/// Where the agent goes on a Windows host; `None`: the default
/// (`%ProgramFiles%\Vigil`, `%ProgramData%\Vigil\agent`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct WinLayout {
    pub install_dir: Option<String>,
    pub state_dir: Option<String>,
}

impl WinLayout {
    /// The given directories, each a checked Windows absolute path.
    pub fn new(
        install_dir: Option<&str>,
        state_dir: Option<&str>,
    ) -> Result<WinLayout, InstallError> {
        let dir = |field, given: Option<&str>| {
            given
                .filter(|d| !d.is_empty())
                .map(|d| check_windows_dir(field, d))
                .transpose()
        };
        Ok(WinLayout {
            install_dir: dir("install_dir", install_dir)?,
            state_dir: dir("state_dir", state_dir)?,
        })
    }

    fn install_dir_expr(&self) -> String {
        self.install_dir
            .as_deref()
            .map_or_else(|| DEFAULT_INSTALL_DIR.to_string(), ps_quote)
    }

    fn state_dir_expr(&self) -> String {
        self.state_dir
            .as_deref()
            .map_or_else(|| DEFAULT_STATE_DIR.to_string(), ps_quote)
    }
}

/// A Windows absolute path (`C:\dir\…`, no `..`, no control characters,
/// quotes or characters Windows refuses in names), trailing `\` removed.
pub(crate) fn check_windows_dir(field: &'static str, path: &str) -> Result<String, InstallError> {
    let bad = |why: &str| InstallError::Invalid(format!("{field} {path:?}: {why}"));
    let b = path.as_bytes();
    let drive = b.len() >= 3 && b[0].is_ascii_alphabetic() && b[1] == b':' && b[2] == b'\\';
    if !drive {
        return Err(bad(
            "must be a Windows absolute path with a drive letter, like C:\\Program Files\\Vigil",
        ));
    }
    if path.len() > 240 {
        return Err(bad("is longer than 240 characters"));
    }
    if path.chars().any(char::is_control) {
        return Err(bad("must not contain control characters"));
    }
    let refused = [
        '"', '\'', '`', '/', '<', '>', '|', '?', '*', '\u{2018}', '\u{2019}', '\u{201A}',
        '\u{201B}', '\u{201C}', '\u{201D}', '\u{201E}',
    ];
    if let Some(c) = path.chars().find(|c| refused.contains(c)) {
        return Err(bad(&format!(
            "must not contain {c:?} (no quotes, `/` or characters Windows refuses in names)"
        )));
    }
    let trimmed = path.trim_end_matches('\\');
    let rest = &trimmed[2.min(trimmed.len())..];
    if rest.is_empty() {
        return Err(bad("must not be the root of a drive"));
    }
    if rest.contains(':') {
        return Err(bad("must not contain `:` after the drive letter"));
    }
    for part in rest.trim_start_matches('\\').split('\\') {
        if part.is_empty() {
            return Err(bad("must not contain an empty component (`\\\\`)"));
        }
        if part == ".." || part == "." {
            return Err(bad("must not contain `.` or `..` components"));
        }
    }
    Ok(trimmed.to_string())
}

/// `value` as one PowerShell single-quoted string: `'` and the typographic
/// single quotes PowerShell also accepts as quotes are doubled. Nothing
/// else is special inside single quotes (no `$`, no backtick escapes).
pub(crate) fn ps_quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        if matches!(c, '\'' | '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{201B}') {
            out.push(c);
        }
        out.push(c);
    }
    out.push('\'');
    out
}

/// The hex of a `sha256:<hex>` pin, upper case like .NET's `BitConverter`.
fn pin_hex(pin: &str) -> String {
    pin.strip_prefix("sha256:")
        .unwrap_or(pin)
        .to_ascii_uppercase()
}

/// The certificate check: true for exactly the pinned certificate.
fn pin_callback(pin: &str) -> String {
    format!(
        "{{ param($vigilSender, $vigilCert, $vigilChain, $vigilErrors) \
         if ($null -eq $vigilCert) {{ return $false }}; \
         [BitConverter]::ToString([Security.Cryptography.SHA256]::Create().ComputeHash($vigilCert.GetRawCertData())).Replace('-', '') -eq {} }}",
        ps_quote(&pin_hex(pin))
    )
}

/// Fills `@@NAME@@` markers in one pass (a value is never searched again).
fn fill(template: &str, vars: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + 512);
    for (i, part) in template.split("@@").enumerate() {
        if i % 2 == 0 {
            out.push_str(part);
        } else {
            match vars.iter().find(|(name, _)| *name == part) {
                Some((_, value)) => out.push_str(value),
                None => {
                    out.push_str("@@");
                    out.push_str(part);
                    out.push_str("@@");
                }
            }
        }
    }
    out
}

const PRELUDE: &str = r#"param([Parameter(Mandatory)][string]$Token)
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
$server = @@SERVER@@
$pin = @@PIN@@
$binarySha256 = @@SHA256@@
$installDir = @@INSTALL_DIR@@
$stateDir = @@STATE_DIR@@
$bin = Join-Path $installDir 'vigil.exe'
function Fail([string]$Message) { throw "vigil-install: $Message" }
# Native programs: their stderr is shown, their exit code decides.
function Invoke-Native([string]$Exe, [string]$What, [string[]]$Arguments) {
    $previous = $ErrorActionPreference
    $ErrorActionPreference = 'Continue'
    try {
        & $Exe @Arguments 2>&1 | ForEach-Object { "$_" }
    } finally {
        $ErrorActionPreference = $previous
    }
    if ($LASTEXITCODE -ne 0) { Fail "$What failed (exit code $LASTEXITCODE)" }
}
$principal = New-Object Security.Principal.WindowsPrincipal([Security.Principal.WindowsIdentity]::GetCurrent())
if (-not $principal.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)) {
    Fail 'run this in an elevated PowerShell (Run as Administrator): installing the VigilAgent service needs it'
}
if ($Token -notmatch '^[A-Za-z0-9_-]+$') { Fail 'the token is not an enrollment token (vge_...)' }
"#;

const DOWNLOAD: &str = r#"$download = @@DOWNLOAD@@
$new = Join-Path ([IO.Path]::GetTempPath()) ('vigil-' + [guid]::NewGuid().ToString('N') + '.exe')
[Net.ServicePointManager]::SecurityProtocol = [Net.SecurityProtocolType]::Tls12
$previousCallback = [Net.ServicePointManager]::ServerCertificateValidationCallback
try {
    [Net.ServicePointManager]::ServerCertificateValidationCallback = @@CALLBACK@@
    Write-Output "vigil-install: downloading the agent from $download"
    (New-Object Net.WebClient).DownloadFile($download, $new)
} catch {
    Remove-Item -LiteralPath $new -Force -ErrorAction SilentlyContinue
    Fail "downloading the agent from $download failed (the server's certificate must be $pin): $($_.Exception.Message)"
} finally {
    [Net.ServicePointManager]::ServerCertificateValidationCallback = $previousCallback
}
"#;

const UPLOADED: &str = r#"$new = Join-Path $installDir '@@UPLOAD_NAME@@'
if (-not (Test-Path -LiteralPath $new -PathType Leaf)) { Fail "the agent binary was not copied to $new" }
"#;

const SETUP: &str = r#"$actual = (Get-FileHash -Algorithm SHA256 -LiteralPath $new).Hash
if ($actual -ne $binarySha256) {
    Remove-Item -LiteralPath $new -Force -ErrorAction SilentlyContinue
    Fail "the agent binary's SHA-256 is $actual, not $binarySha256 as the server says: it was deleted, nothing was installed"
}
if (Get-Service -Name '@@SERVICE@@' -ErrorAction SilentlyContinue) {
    Write-Output 'vigil-install: stopping and removing the existing @@SERVICE@@ service'
    Stop-Service -Name '@@SERVICE@@' -Force -ErrorAction SilentlyContinue
    Invoke-Native $new 'removing the existing @@SERVICE@@ service' @('agent', 'service', 'uninstall')
    for ($i = 0; ($i -lt 30) -and (Get-Service -Name '@@SERVICE@@' -ErrorAction SilentlyContinue); $i++) { Start-Sleep -Seconds 1 }
}
New-Item -ItemType Directory -Force -Path $installDir | Out-Null
# The old agent may hold its file a moment after it stopped.
for ($i = 1; $true; $i++) {
    try {
        Copy-Item -LiteralPath $new -Destination $bin -Force
        break
    } catch {
        if ($i -ge 20) { Fail "cannot write ${bin}: $($_.Exception.Message)" }
        Start-Sleep -Seconds 1
    }
}
Remove-Item -LiteralPath $new -Force
New-Item -ItemType Directory -Force -Path $stateDir | Out-Null
# The state holds the agent's credential: SYSTEM and Administrators only.
Invoke-Native 'icacls.exe' "restricting $stateDir to SYSTEM and Administrators" @($stateDir, '/inheritance:r', '/grant:r', '*S-1-5-18:(OI)(CI)F', '*S-1-5-32-544:(OI)(CI)F')
Invoke-Native $bin 'enrolling the agent' @('agent', '--state-dir', $stateDir, 'enroll', '--server', $server, '--token', $Token, '--pin', $pin)
Invoke-Native $bin 'installing the @@SERVICE@@ service' @('agent', '--state-dir', $stateDir, 'service', 'install')
Invoke-Native $bin 'starting the @@SERVICE@@ service' @('agent', 'service', 'start')
Write-Output "vigil-install: started the @@SERVICE@@ service ($bin, state in $stateDir)"
"#;

/// The values every script carries, quoted.
fn prelude(layout: &WinLayout, server_url: &str, pin: &str, binary_sha256: &str) -> String {
    fill(
        PRELUDE,
        &[
            ("SERVER", &ps_quote(server_url)),
            ("PIN", &ps_quote(pin)),
            ("SHA256", &ps_quote(&binary_sha256.to_ascii_uppercase())),
            ("INSTALL_DIR", &layout.install_dir_expr()),
            ("STATE_DIR", &layout.state_dir_expr()),
        ],
    )
}

fn setup() -> String {
    fill(SETUP, &[("SERVICE", SERVICE_NAME)])
}

/// `install.ps1`, served at `/agent/v1/install.ps1` and run by the
/// one-line command ([`one_liner`]) or as a file with `-Token`.
pub(crate) fn install_ps1(
    layout: &WinLayout,
    server_url: &str,
    pin: &str,
    binary_sha256: &str,
    download_url: &str,
) -> String {
    let mut s = String::from(
        "# Vigil agent installer for Windows PowerShell 5.1 or later, run as Administrator:\n\
         #   & ([scriptblock]::Create($thisScript)) -Token 'ENROLLMENT_TOKEN'\n\
         # or saved to a file: powershell -NoProfile -ExecutionPolicy Bypass -File install.ps1 -Token ENROLLMENT_TOKEN\n\
         # Any failure stops it with an error (exit code 1 with -File). It holds no secret.\n",
    );
    s.push_str(&prelude(layout, server_url, pin, binary_sha256));
    s.push_str(&fill(
        DOWNLOAD,
        &[
            ("DOWNLOAD", &ps_quote(download_url)),
            ("CALLBACK", &pin_callback(pin)),
        ],
    ));
    s.push_str(&setup());
    s
}

/// The push install's setup, run once the binary is at
/// `<install_dir>\vigil.new.exe` (fed on stdin to [`run_stdin_command`]).
pub(crate) fn setup_ps1(
    layout: &WinLayout,
    server_url: &str,
    pin: &str,
    binary_sha256: &str,
) -> String {
    let mut s = prelude(layout, server_url, pin, binary_sha256);
    s.push_str(&fill(UPLOADED, &[("UPLOAD_NAME", UPLOAD_NAME)]));
    s.push_str(&setup());
    s
}

/// The one-line manual install for an elevated Windows PowerShell prompt:
/// TLS 1.2, the pinned certificate check, `install.ps1` downloaded into a
/// script block and run with the token. Everything sits in one `try`, so a
/// failed download runs nothing; the previous check is restored.
pub(crate) fn one_liner(pin: &str, script_url: &str, token: &str) -> String {
    format!(
        "[Net.ServicePointManager]::SecurityProtocol = [Net.SecurityProtocolType]::Tls12; \
         $vigilPrevious = [Net.ServicePointManager]::ServerCertificateValidationCallback; \
         try {{ [Net.ServicePointManager]::ServerCertificateValidationCallback = {}; \
         $vigilScript = (New-Object Net.WebClient).DownloadString({}); \
         & ([scriptblock]::Create($vigilScript)) -Token {} }} \
         finally {{ [Net.ServicePointManager]::ServerCertificateValidationCallback = $vigilPrevious }}",
        pin_callback(pin),
        ps_quote(script_url),
        ps_quote(token)
    )
}

/// `powershell … -EncodedCommand <base64 of UTF-16LE>`: the same bytes
/// whether the SSH server's shell is cmd or PowerShell, nothing to quote.
pub(crate) fn encoded_command(script: &str) -> String {
    let utf16: Vec<u8> = script.encode_utf16().flat_map(u16::to_le_bytes).collect();
    format!(
        "powershell -NoProfile -NonInteractive -EncodedCommand {}",
        base64::engine::general_purpose::STANDARD.encode(utf16)
    )
}

/// Errors as one plain stderr line and exit code 1 (not CLIXML).
fn guarded(body: &str) -> String {
    format!(
        "$ErrorActionPreference = 'Stop'; $ProgressPreference = 'SilentlyContinue'\n\
         try {{\n{body}\n}} catch {{ [Console]::Error.WriteLine($_.Exception.Message); exit 1 }}\n"
    )
}

/// The push install's upload: stdin, byte for byte, to
/// `<install_dir>\vigil.new.exe`.
pub(crate) fn upload_command(layout: &WinLayout) -> String {
    encoded_command(&guarded(&format!(
        "$dir = {}\n\
         New-Item -ItemType Directory -Force -Path $dir | Out-Null\n\
         $out = [IO.File]::Create((Join-Path $dir {}))\n\
         try {{ [Console]::OpenStandardInput().CopyTo($out) }} finally {{ $out.Close() }}",
        layout.install_dir_expr(),
        ps_quote(UPLOAD_NAME)
    )))
}

/// Runs the script fed on stdin (UTF-8) with `-Token token`. The script
/// itself (over 8 KiB encoded) would not fit cmd's command line.
pub(crate) fn run_stdin_command(token: &str) -> String {
    encoded_command(&guarded(&format!(
        "$in = New-Object IO.MemoryStream\n\
         [Console]::OpenStandardInput().CopyTo($in)\n\
         $text = [Text.Encoding]::UTF8.GetString($in.ToArray())\n\
         & ([scriptblock]::Create($text)) -Token {}",
        ps_quote(token)
    )))
}

/// The login shell of an SSH account, as [`SHELL_PROBE`] tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RemoteShell {
    /// `sh` or another Unix shell: the Linux install.
    Posix,
    /// Windows' OpenSSH server with its default shell.
    Cmd,
    /// Windows' OpenSSH server with PowerShell as its shell.
    PowerShell,
}

impl RemoteShell {
    pub fn is_windows(self) -> bool {
        self != RemoteShell::Posix
    }
}

/// Reads [`SHELL_PROBE`]'s output; anything unexpected is a Unix shell
/// (the install then fails as before, with the Linux script's messages).
pub(crate) fn parse_shell_probe(out: &str) -> RemoteShell {
    let lines: Vec<&str> = out
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let windows_nt = |l: &&str| l.eq_ignore_ascii_case("Windows_NT");
    if lines.iter().any(windows_nt) && lines.contains(&"%OS%") {
        return RemoteShell::PowerShell;
    }
    match lines.first() {
        Some(l)
            if l.get(..10)
                .is_some_and(|p| p.eq_ignore_ascii_case("Windows_NT"))
                && l.contains("$env:OS") =>
        {
            RemoteShell::Cmd
        }
        _ => RemoteShell::Posix,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    const PIN: &str = "sha256:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    const HASH: &str = "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789";

    /// Undoes [`ps_quote`] the way PowerShell's tokenizer reads a
    /// single-quoted string: a doubled quote is one quote, a lone one ends it.
    fn ps_unquote(quoted: &str) -> Option<(String, &str)> {
        let is_quote =
            |c: char| matches!(c, '\'' | '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{201B}');
        let mut chars = quoted.char_indices().peekable();
        let (_, first) = chars.next()?;
        if !is_quote(first) {
            return None;
        }
        let mut out = String::new();
        while let Some((i, c)) = chars.next() {
            if is_quote(c) {
                match chars.peek() {
                    Some(&(_, n)) if is_quote(n) => {
                        out.push(c);
                        chars.next();
                    }
                    _ => return Some((out, &quoted[i + c.len_utf8()..])),
                }
            } else {
                out.push(c);
            }
        }
        None
    }

    #[test]
    fn powershell_quoting_survives_every_character() {
        for value in [
            "plain",
            "it's",
            "''",
            "$(Remove-Item C:\\ -Recurse)",
            "$env:TEMP",
            "`n`0",
            "\"double\"",
            "a\u{2019}b\u{2018}c\u{201A}d\u{201B}",
            "line\nbreak",
            "",
        ] {
            let quoted = ps_quote(value);
            let (back, rest) = ps_unquote(&quoted).unwrap_or_else(|| panic!("{quoted}"));
            assert_eq!(back, value, "{quoted}");
            assert_eq!(rest, "", "the string ends where the quote does: {quoted}");
        }
        assert_eq!(ps_quote("it's"), "'it''s'");
        assert_eq!(ps_quote("a\u{2019}b"), "'a\u{2019}\u{2019}b'");
    }

    #[test]
    fn windows_directories_are_checked() {
        let ok = WinLayout::new(Some("D:\\Apps\\Vigil Agent\\"), Some("C:\\ProgramData\\v"))
            .expect("valid");
        assert_eq!(ok.install_dir.as_deref(), Some("D:\\Apps\\Vigil Agent"));
        assert_eq!(ok.state_dir.as_deref(), Some("C:\\ProgramData\\v"));
        assert_eq!(
            WinLayout::new(None, Some("")).expect("defaults"),
            WinLayout::default()
        );
        for (bad, why) in [
            ("/opt/vigil", "drive letter"),
            ("Program Files\\Vigil", "drive letter"),
            ("\\\\server\\share\\v", "drive letter"),
            ("C:", "drive letter"),
            ("C:\\", "root of a drive"),
            ("C:\\a\\..\\Windows", "`..`"),
            ("C:\\a\\.\\b", "`..`"),
            ("C:\\a\\\\b", "empty component"),
            ("C:\\a\nb", "control"),
            ("C:\\it's", "'\\''"),
            ("C:\\a\u{2019}b", "quotes"),
            ("C:\\a\"b", "quotes"),
            ("C:\\a`b", "quotes"),
            ("C:\\a/b", "quotes"),
            ("C:\\a:b", "after the drive"),
            ("C:\\a|b", "refuses"),
        ] {
            let err = WinLayout::new(Some(bad), None)
                .err()
                .unwrap_or_else(|| panic!("{bad:?} accepted"))
                .to_string();
            assert!(
                err.starts_with("install_dir ") && err.contains(why),
                "{bad:?}: {err}"
            );
        }
        let long = format!("C:\\{}", "a".repeat(300));
        let err = WinLayout::new(None, Some(&long))
            .expect_err("long")
            .to_string();
        assert!(
            err.starts_with("state_dir ") && err.contains("240"),
            "{err}"
        );
    }

    /// The `name = 'value'` line of `script`, unquoted.
    fn assigned(script: &str, name: &str) -> String {
        let prefix = format!("${name} = ");
        let line = script
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no ${name} in\n{script}"));
        ps_unquote(line).unwrap_or_else(|| panic!("{line}")).0
    }

    #[test]
    fn install_ps1_carries_the_quoted_values_and_every_step() {
        let layout = WinLayout::new(Some("C:\\Tools\\Vi$gil (x)"), None).expect("valid");
        let url = "https://vigil.test:8443/it's";
        let s = install_ps1(
            &layout,
            url,
            PIN,
            HASH,
            "https://vigil.test:8443/agent/v1/download/vigil.exe",
        );
        assert!(
            s.contains("\nparam([Parameter(Mandatory)][string]$Token)\n"),
            "{s}"
        );
        assert!(!s.contains("@@"), "every marker is filled:\n{s}");
        assert!(!s.contains("-Token 'vge"), "the script holds no token");
        assert_eq!(assigned(&s, "server"), url);
        assert_eq!(assigned(&s, "pin"), PIN);
        assert_eq!(assigned(&s, "binarySha256"), HASH.to_ascii_uppercase());
        assert_eq!(assigned(&s, "installDir"), "C:\\Tools\\Vi$gil (x)");
        assert!(
            s.contains("$stateDir = (Join-Path $env:ProgramData 'Vigil\\agent')"),
            "{s}"
        );
        assert_eq!(
            assigned(&s, "download"),
            "https://vigil.test:8443/agent/v1/download/vigil.exe"
        );
        // In order: elevated, TLS 1.2, pinned download, restore, hash
        // check, old service out, binary in, enroll, service install, start.
        let steps = [
            "[Security.Principal.WindowsBuiltInRole]::Administrator",
            "[Net.SecurityProtocolType]::Tls12",
            "$previousCallback = [Net.ServicePointManager]::ServerCertificateValidationCallback",
            "GetRawCertData()",
            "DownloadFile($download, $new)",
            "ServerCertificateValidationCallback = $previousCallback",
            "Get-FileHash -Algorithm SHA256 -LiteralPath $new",
            "Remove-Item -LiteralPath $new -Force -ErrorAction SilentlyContinue\n    Fail \"the agent binary's SHA-256",
            "Stop-Service -Name 'VigilAgent'",
            "@('agent', 'service', 'uninstall')",
            "Copy-Item -LiteralPath $new -Destination $bin -Force",
            "'enroll', '--server', $server, '--token', $Token, '--pin', $pin)",
            "@('agent', '--state-dir', $stateDir, 'service', 'install')",
            "@('agent', 'service', 'start')",
        ];
        let mut at = 0;
        for step in steps {
            let found = s[at..]
                .find(step)
                .unwrap_or_else(|| panic!("{step:?} missing or out of order:\n{s}"));
            at += found + step.len();
        }
        assert!(
            s.contains(&format!("-eq '{}' }}", &PIN[7..].to_ascii_uppercase())),
            "{s}"
        );
        assert!(
            !s.contains("exit 1") && !s.contains("{ exit"),
            "failures throw, so a prompt stays open"
        );
        assert_eq!(
            s.matches('{').count(),
            s.matches('}').count(),
            "braces balance"
        );
    }

    #[test]
    fn setup_ps1_uses_the_uploaded_binary() {
        let s = setup_ps1(&WinLayout::default(), "https://h:8443", PIN, HASH);
        assert!(
            s.starts_with("param([Parameter(Mandatory)][string]$Token)\n"),
            "{s}"
        );
        assert!(s.contains("$installDir = (Join-Path $env:ProgramFiles 'Vigil')"));
        assert!(
            s.contains("$new = Join-Path $installDir 'vigil.new.exe'"),
            "{s}"
        );
        assert!(!s.contains("DownloadFile") && !s.contains("@@"), "{s}");
        assert!(s.contains("Get-FileHash"), "an upload cut short is caught");
    }

    #[test]
    fn the_one_liner_pins_downloads_and_passes_the_token() {
        let line = one_liner(
            PIN,
            "https://vigil.test:8443/agent/v1/install.ps1?x='y'",
            "vge_ab-C_d",
        );
        assert!(!line.contains('\n'), "one line");
        assert!(line.starts_with(
            "[Net.ServicePointManager]::SecurityProtocol = [Net.SecurityProtocolType]::Tls12; "
        ));
        assert!(line.contains(
            "[Security.Cryptography.SHA256]::Create().ComputeHash($vigilCert.GetRawCertData())"
        ));
        assert!(line.contains(&format!("-eq '{}'", &PIN[7..].to_ascii_uppercase())));
        assert!(
            line.contains("DownloadString('https://vigil.test:8443/agent/v1/install.ps1?x=''y''')"),
            "{line}"
        );
        assert!(
            line.contains("& ([scriptblock]::Create($vigilScript)) -Token 'vge_ab-C_d' }"),
            "{line}"
        );
        assert!(line.ends_with(
            "finally { [Net.ServicePointManager]::ServerCertificateValidationCallback = $vigilPrevious }"
        ));
        assert!(!line.contains("SkipCertificateCheck"));
        assert_eq!(line.matches('{').count(), line.matches('}').count());
    }

    fn decode(command: &str) -> String {
        let b64 = command
            .strip_prefix("powershell -NoProfile -NonInteractive -EncodedCommand ")
            .expect("an encoded command");
        assert!(b64
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b)));
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .expect("base64");
        let units: Vec<u16> = bytes
            .chunks(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        String::from_utf16(&units).expect("UTF-16")
    }

    #[test]
    fn ssh_commands_are_encoded_and_short() {
        let layout = WinLayout::new(Some("E:\\Vigil"), None).expect("valid");
        let upload = upload_command(&layout);
        let text = decode(&upload);
        assert!(text.contains("$dir = 'E:\\Vigil'"), "{text}");
        assert!(text.contains("Join-Path $dir 'vigil.new.exe'"), "{text}");
        assert!(
            text.contains("[Console]::OpenStandardInput().CopyTo($out)"),
            "{text}"
        );
        assert!(
            text.contains("exit 1"),
            "errors end powershell with 1: {text}"
        );
        let run = run_stdin_command("vge_x'y");
        let text = decode(&run);
        assert!(text.contains("[Text.Encoding]::UTF8.GetString"), "{text}");
        assert!(text.contains("-Token 'vge_x''y'"), "{text}");
        // cmd.exe takes at most 8191 characters.
        assert!(upload.len() < 8191 && run.len() < 8191);
        assert_eq!(decode(&encoded_command("é'€")), "é'€");
    }

    #[test]
    fn the_remote_shell_is_told_from_the_probe() {
        for (out, shell) in [
            ("%OS% :OS\n", RemoteShell::Posix),
            ("%OS%\n", RemoteShell::Posix),
            ("", RemoteShell::Posix),
            ("Windows_NT $env:OS\r\n", RemoteShell::Cmd),
            ("%OS%\r\nWindows_NT\r\n", RemoteShell::PowerShell),
            ("Welcome!\n%OS% :OS\n", RemoteShell::Posix),
        ] {
            assert_eq!(parse_shell_probe(out), shell, "{out:?}");
        }
        assert!(RemoteShell::Cmd.is_windows() && !RemoteShell::Posix.is_windows());
        // What sh really prints.
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(SHELL_PROBE)
            .env_remove("env")
            .output()
            .expect("sh runs");
        assert_eq!(
            parse_shell_probe(&String::from_utf8_lossy(&out.stdout)),
            RemoteShell::Posix
        );
    }

    #[test]
    fn the_script_checks_the_hash_of_the_served_file() {
        // The check compares Get-FileHash's upper-case hex with the value
        // the server computed: the same SHA-256 of the same bytes.
        let body = b"MZ not really an exe";
        let hex: String = Sha256::digest(body)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let s = install_ps1(&WinLayout::default(), "https://h", PIN, &hex, "https://h/d");
        assert_eq!(assigned(&s, "binarySha256"), hex.to_ascii_uppercase());
    }
}
