import CagentCore
import CagentProfile
#if canImport(Glibc)
import Glibc
#endif

/// `enforce --ssh-key FILE`: ssh for git without `~/.ssh`. One deploy key, read host-side with the user's
/// rights (never through a link at its name, never from `~/.ssh` or the workspace), is written into the
/// sandbox's sealed `/etc/ssh` (read-only, gone with the session: never in the persistent shadow home),
/// with a `known_hosts` holding only the profile's ssh hosts — its endpoints on 22/tcp, taken from the
/// user's `~/.ssh/known_hosts` and cagent's `~/.config/cagent/ssh/known_hosts` — and an `ssh_config` that makes ssh (and git through it) use
/// exactly these. The user's `~/.ssh` stays hidden; the firewall's endpoint rule decides where ssh goes.
package struct SshDeployKey: Sendable, Equatable {
    package static let directory = "/etc/ssh"
    package static let keyPath = directory + "/cagent_deploy_key"
    package static let knownHostsPath = directory + "/ssh_known_hosts"
    package static let configPath = directory + "/ssh_config"
    /// OpenSSH private keys are a few KiB at most (an RSA 16384 key is ~12 KiB).
    static let sizeLimit = 16 << 10

    /// The private key's text (never printed, logged or stored: it travels only in the plan to cagent-init).
    package var key: String
    /// The file it came from, for the start line.
    package var source: String
    /// The profile's ssh hosts in ssh's lookup form (`host`, `[host]:port`).
    package var hosts: [String]
    /// `host keytype key` lines for them.
    package var knownHosts: [String]
    /// Hosts without an entry: ssh will refuse them (StrictHostKeyChecking).
    package var unknownHosts: [String]

    /// The profile's ssh hosts: its endpoints on port 22/tcp (a name or an address).
    package static func sshHosts(_ endpoints: [Endpoint]) -> [String] {
        var seen: [String] = []
        for endpoint in endpoints where endpoint.proto == .tcp && endpoint.port == 22 {
            let name = KnownHosts.lookupName(host: endpoint.host, port: endpoint.port)
            if !seen.contains(name) { seen.append(name) }
        }
        return seen
    }

    /// Reads the key and the user's known_hosts as `user`. `keyFile` as given on the command line (made
    /// absolute against `currentDirectory`); `workspace` is the real workspace path (a key there is refused).
    /// `configDirectory` (cagent's, `~/.config/cagent`): its `ssh/known_hosts` is read besides `~/.ssh/known_hosts`,
    /// so the deploy-key setup can live entirely in cagent's config.
    package static func load(keyFile: String, currentDirectory: String, endpoints: [Endpoint], user: InvokingUser,
                            workspace: String, configDirectory: String? = nil) throws -> SshDeployKey {
        let path = keyFile.hasPrefix("/") ? keyFile : currentDirectory + "/" + keyFile
        let shown = TerminalEscape.escape(keyFile)
        let identity = FileIdentity(invokingUnderRoot: user)
        // Where it lives: never the user's own ~/.ssh (that is what stays hidden), never the workspace (the
        // agent could have put a link there that leads to the user's real key).
        let resolved = (try? FileSystem.asUser(identity) { FileSystem.realPath(path) }) ?? nil
        for candidate in [path, resolved].compactMap({ $0 }) {
            if candidate == user.home + "/.ssh" || candidate.hasPrefix(user.home + "/.ssh/") {
                throw CagentError(stage: "ssh key", "\(shown) is in ~/.ssh, which the sandbox never sees",
                                  hint: "make a deploy key for the agent (ssh-keygen -t ed25519 -f ~/.config/cagent/ssh/deploy_key), authorize only it on the git host, and pass that")
            }
            if candidate == workspace || candidate.hasPrefix(workspace + "/") {
                throw CagentError(stage: "ssh key", "\(shown) is in the workspace: the agent can read and replace it there",
                                  hint: "keep the deploy key in cagent's config (~/.config/cagent/ssh/)")
            }
        }
        let bytes: [UInt8]
        switch FileSystem.readAsUser(path, limit: sizeLimit, identity: identity, followSymlinks: false) {
        case .success(let read): bytes = read
        case .failure(let error):
            throw CagentError(stage: "ssh key", error.message(path: keyFile),
                              hint: "--ssh-key names a private key file (not a link) that you can read")
        }
        // The content is checked, never quoted: a wrong file must not end up on the terminal either.
        guard !bytes.contains(0), let text = String(validating: bytes, as: UTF8.self),
              text.hasPrefix("-----BEGIN "), text.contains("PRIVATE KEY-----") else {
            throw CagentError(stage: "ssh key", "\(shown) is not an OpenSSH/PEM private key",
                              hint: "pass the private half of the deploy key (the file without .pub)")
        }
        let hosts = sshHosts(endpoints)
        var knownText = ""
        for file in [user.home + "/.ssh/known_hosts"] + (configDirectory.map { [$0 + "/ssh/known_hosts"] } ?? []) {
            if case .success(let known) = FileSystem.readAsUser(file, limit: 4 << 20, identity: identity, followSymlinks: false) {
                knownText += String(decoding: known, as: UTF8.self) + "\n"
            }
        }
        let found = KnownHosts.filter(knownText, names: hosts)
        return SshDeployKey(key: text.hasSuffix("\n") ? text : text + "\n", source: path, hosts: hosts,
                            knownHosts: hosts.flatMap { found[$0] ?? [] },
                            unknownHosts: hosts.filter { (found[$0] ?? []).isEmpty })
    }

    /// The files in the sandbox's /etc/ssh (created by cagent-init as the agent's user; /etc is sealed
    /// read-only after them). The config is ssh's system-wide one: with `~/.ssh` hidden and empty it is
    /// the only one ssh reads, so plain `ssh` and git's ssh behave alike.
    package var steps: [SandboxPlan.Step] {
        let config = """
        # cagent enforce --ssh-key: this deploy key, the profile's ssh hosts only (docs/cli.md).
        Host *
          IdentityFile \(Self.keyPath)
          IdentitiesOnly yes
          IdentityAgent none
          GlobalKnownHostsFile \(Self.knownHostsPath)
          UserKnownHostsFile /dev/null
          StrictHostKeyChecking yes
          UpdateHostKeys no
          CheckHostIP no

        """
        return [
            .init(.file(path: Self.configPath, mode: "0644", contents: config), "--ssh-key: ssh uses the deploy key and the profile's known hosts only"),
            .init(.file(path: Self.knownHostsPath, mode: "0644",
                         contents: "# cagent enforce --ssh-key: the profile's ssh hosts only\n" + knownHosts.map { $0 + "\n" }.joined()),
                  "--ssh-key: the host keys of the profile's ssh hosts, nothing else"),
            .init(.file(path: Self.keyPath, mode: "0400", contents: key), "--ssh-key: the deploy key, read-only"),
        ]
    }

    /// What `--dump-plan` writes in the key file's place: a reference (its file and sha256), never the
    /// material: a dumped plan is for reading and diffing, and may be pasted into an issue.
    package var dumpReference: String {
        "# cagent --dump-plan: the deploy key \(source) (sha256:\(SHA256.hex(Array(key.utf8)))) is not written here\n"
    }

    /// What the start says: the key's file, the hosts, and the ones ssh will refuse (no known key).
    package func startLines(home: String) -> [String] {
        let file = TerminalEscape.escape(AgentBootstrap.display(source, home: home))
        var lines: [String] = []
        if hosts.isEmpty {
            lines.append("cagent: warning: --ssh-key \(file): the profile names no ssh host (network.endpoints: [\"HOST:22/tcp\"]): ssh reaches nowhere")
        } else {
            lines.append("cagent: ssh: deploy key \(file) for \(hosts.map(TerminalEscape.escape).joined(separator: ", ")); ~/.ssh stays hidden")
        }
        for host in unknownHosts {
            let shown = TerminalEscape.escape(host)
            lines.append("cagent: warning: --ssh-key: no key for \(shown) in ~/.ssh/known_hosts or ~/.config/cagent/ssh/known_hosts: ssh will refuse it (check its fingerprint, then add it: ssh-keyscan \(shown) >> ~/.config/cagent/ssh/known_hosts)")
        }
        return lines
    }
}
