#if !CAGENT_FUZZ
import CagentNetwork
#endif

/// One request head an agent sent to the filtering proxy (`cagent enforce --proxy`), and what to do with it:
/// a pure function of the bytes and the session's GatePolicy, so every rule is unit-tested without a socket.
///
/// Only two forms are proxied: `CONNECT host:port` and an absolute-URI `http://host[:port]/...` request. The
/// decision looks at the request line's target alone; a `Host` header must name the same host and port (a
/// proxy or server behind us that trusted `Host` over the target would otherwise reach another host), and
/// the head is read strictly (CRLF only, no control bytes, no folded lines, one Host, no Transfer-Encoding):
/// an ambiguous head is refused, never guessed at.
package struct ProxyRequest: Sendable, Equatable {
    package enum Form: Sendable, Equatable { case connect, absolute }
    package var form: Form
    package var method: String
    /// Lowercased host name (never an address: names are resolved by the upstream proxy, after our check).
    package var host: String
    package var port: UInt16
    /// What goes to the upstream proxy: a fresh CONNECT head, or the request rebuilt with `Connection: close`
    /// (one request per connection: a second, pipelined request would not have been checked).
    package var upstreamHead: [UInt8]
    /// Absolute form: request body bytes that follow the head (Content-Length); nothing more is forwarded.
    package var bodyLength: Int

    /// `host:port` as the denial line shows it.
    package var target: String { "\(host):\(port)" }
}

package enum ProxyVerdict: Sendable, Equatable {
    case forward(ProxyRequest)
    /// Answer `status` and close; `target` (when the request line named one) and `reason` go to the denial line.
    case refuse(status: Int, method: String?, target: String?, reason: String)
}

package enum ProxyRequestParser {
    /// The longest request head read; a longer one is refused with 431.
    package static let maxHead = 16 * 1024

    /// The index just past the head's blank line (`\r\n\r\n`), or nil while it is incomplete.
    package static func headEnd(_ bytes: [UInt8]) -> Int? {
        guard bytes.count >= 4 else { return nil }
        for index in 3..<bytes.count where bytes[index] == 10 && bytes[index - 1] == 13
            && bytes[index - 2] == 10 && bytes[index - 3] == 13 {
            return index + 1
        }
        return nil
    }

    /// Decides on a complete head (up to and including the blank line).
    package static func decide(head: [UInt8], policy: GatePolicy) -> ProxyVerdict {
        func bad(_ reason: String, _ method: String? = nil, _ target: String? = nil) -> ProxyVerdict {
            .refuse(status: 400, method: method, target: target, reason: reason)
        }
        guard head.count <= maxHead else { return .refuse(status: 431, method: nil, target: nil, reason: "request head too long") }
        // Printable ASCII, tab, and CR only as part of CRLF: no NUL, no bare CR or LF, no 8-bit bytes.
        for (index, byte) in head.enumerated() {
            if byte == 13 { guard index + 1 < head.count, head[index + 1] == 10 else { return bad("bare CR in the head") }; continue }
            if byte == 10 { guard index > 0, head[index - 1] == 13 else { return bad("bare LF in the head") }; continue }
            guard byte == 9 || (byte >= 0x20 && byte < 0x7f) else { return bad("control or non-ASCII byte in the head") }
        }
        var lines = String(decoding: head, as: UTF8.self).split(separator: "\r\n", omittingEmptySubsequences: false).map(String.init)
        while lines.last == "" { lines.removeLast() }
        guard let requestLine = lines.first, !requestLine.isEmpty else { return bad("empty request") }
        let parts = requestLine.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 3, !parts[0].isEmpty, parts[0].utf8.allSatisfy(isTokenByte) else { return bad("malformed request line") }
        let method = parts[0], rawTarget = parts[1], version = parts[2]
        guard version == "HTTP/1.1" || version == "HTTP/1.0" else { return bad("unsupported version", method) }

        // Headers: `Name: value`, no folding, at most one Host, no Transfer-Encoding, at most one Content-Length.
        var headers: [(name: String, value: String)] = []
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { return bad("header line without a colon", method) }
            let name = String(line[..<colon])
            guard !name.isEmpty, name.utf8.allSatisfy(isTokenByte) else { return bad("malformed header name", method) }
            headers.append((name, trimmed(String(line[line.index(after: colon)...]))))
        }
        let hosts = headers.filter { lower($0.name) == "host" }
        guard hosts.count <= 1 else { return bad("more than one Host header", method) }
        guard !headers.contains(where: { lower($0.name) == "transfer-encoding" }) else {
            return .refuse(status: 501, method: method, target: nil, reason: "Transfer-Encoding is not forwarded")
        }
        let lengths = headers.filter { lower($0.name) == "content-length" }
        guard lengths.count <= 1 else { return bad("more than one Content-Length", method) }
        var bodyLength = 0
        if let text = lengths.first?.value {
            guard !text.isEmpty, text.utf8.count <= 12, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let number = Int(text) else {
                return bad("malformed Content-Length", method)
            }
            bodyLength = number
        }

        // The target: the only thing the decision looks at.
        let form: ProxyRequest.Form
        let authority: String
        var rest = ""
        if lower(method) == "connect" {
            guard method == "CONNECT" else { return bad("malformed method", method) }
            form = .connect
            authority = rawTarget
            guard bodyLength == 0 else { return bad("CONNECT with a body", method) }
        } else {
            guard lower(String(rawTarget.prefix(7))) == "http://" else {
                return bad(rawTarget.hasPrefix("/") ? "not a proxy request (origin-form target)" : "unsupported target (only http:// URIs and CONNECT)", method)
            }
            form = .absolute
            let afterScheme = rawTarget.dropFirst(7)
            let end = afterScheme.firstIndex { $0 == "/" || $0 == "?" || $0 == "#" } ?? afterScheme.endIndex
            authority = String(afterScheme[..<end])
            rest = String(afterScheme[end...])
            if rest.isEmpty { rest = "/" }
            guard !rest.contains("#") else { return bad("fragment in the target", method) }
            if rest.hasPrefix("?") { rest = "/" + rest }
        }
        let defaultPort: UInt16? = form == .connect ? nil : 80
        guard let parsed = hostPort(authority, defaultPort: defaultPort) else { return bad("malformed target \(authority)", method) }
        let target = "\(parsed.host):\(parsed.port)"

        // Host must name the same place as the target (no smuggling a second host past the check).
        if let host = hosts.first {
            guard let named = hostPort(host.value, defaultPort: form == .connect ? parsed.port : 80),
                  named.host == parsed.host, named.port == parsed.port else {
                return .refuse(status: 403, method: method, target: target, reason: "Host header \(host.value) differs from the target")
            }
        } else if form == .absolute && version == "HTTP/1.1" {
            return .refuse(status: 400, method: method, target: target, reason: "no Host header")
        }

        // The profile: a name (an address literal is never a profile domain) on a port its rule opens.
        guard !isAddressLiteral(parsed.host), let name = DNSName(parsed.host) else {
            return .refuse(status: 403, method: method, target: target, reason: "an address, not a name in the profile")
        }
        let ports = policy.ports(for: name)
        guard !ports.isEmpty else { return .refuse(status: 403, method: method, target: target, reason: "not in profile") }
        guard ports.contains(PinPort(.tcp, parsed.port)) else {
            return .refuse(status: 403, method: method, target: target, reason: "port \(parsed.port) not in profile")
        }

        var upstream: String
        switch form {
        case .connect:
            upstream = "CONNECT \(target) HTTP/1.1\r\nHost: \(target)\r\n\r\n"
        case .absolute:
            let shownAuthority = parsed.port == 80 ? parsed.host : target
            upstream = "\(method) http://\(shownAuthority)\(rest) \(version)\r\n"
            let hopByHop: Set<String> = ["connection", "proxy-connection", "keep-alive", "proxy-authorization", "te", "upgrade", "host"]
            upstream += "Host: \(shownAuthority)\r\n"
            for header in headers where !hopByHop.contains(lower(header.name)) { upstream += "\(header.name): \(header.value)\r\n" }
            upstream += "Connection: close\r\n\r\n"
        }
        return .forward(ProxyRequest(form: form, method: method, host: parsed.host, port: parsed.port,
                                     upstreamHead: Array(upstream.utf8), bodyLength: bodyLength))
    }

    /// `host:port` (or `host` with a default port); host lowercased, a name of letters, digits, `-`, `_` and
    /// dots, or a bracketed IPv6 / dotted IPv4 literal. Nil for anything else (userinfo, empty parts, ...).
    static func hostPort(_ text: String, defaultPort: UInt16?) -> (host: String, port: UInt16)? {
        var host: String, portText: String?
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            host = String(text[text.index(after: text.startIndex)..<close])
            let after = text[text.index(after: close)...]
            if !after.isEmpty { guard after.hasPrefix(":") else { return nil }; portText = String(after.dropFirst()) }
            guard IPAddress(host) != nil, host.contains(":") else { return nil }
        } else {
            let pieces = text.split(separator: ":", omittingEmptySubsequences: false)
            guard pieces.count <= 2 else { return nil }
            host = String(pieces[0])
            if pieces.count == 2 { portText = String(pieces[1]) }
            guard !host.isEmpty, host.utf8.count <= 253,
                  host.utf8.allSatisfy({ isAlnum($0) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "_") }),
                  !host.hasPrefix("."), !host.contains("..") else { return nil }
            if host.hasSuffix(".") { host.removeLast() }
            guard !host.isEmpty else { return nil }
        }
        let port: UInt16
        if let portText {
            guard !portText.isEmpty, portText.utf8.count <= 5, portText.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
                  let number = UInt16(portText), number > 0 else { return nil }
            port = number
        } else {
            guard let defaultPort else { return nil }
            port = defaultPort
        }
        return (lower(host), port)
    }

    static func isAddressLiteral(_ host: String) -> Bool {
        IPAddress(host) != nil || host.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || $0 == UInt8(ascii: ".") }
    }

    static func isTokenByte(_ byte: UInt8) -> Bool {
        isAlnum(byte) || "!#$%&'*+-.^_`|~".utf8.contains(byte)
    }

    static func isAlnum(_ byte: UInt8) -> Bool {
        (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a)
    }

    static func lower(_ text: String) -> String {
        String(decoding: text.utf8.map { $0 >= 0x41 && $0 <= 0x5a ? $0 + 32 : $0 }, as: UTF8.self)
    }

    static func trimmed(_ text: String) -> String {
        var bytes = Array(text.utf8)
        while let first = bytes.first, first == 32 || first == 9 { bytes.removeFirst() }
        while let last = bytes.last, last == 32 || last == 9 { bytes.removeLast() }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The refusal's response: short, plain text, the connection closed.
    package static func refusal(status: Int, reason: String) -> [UInt8] {
        let phrase = [400: "Bad Request", 403: "Forbidden", 408: "Request Timeout", 431: "Request Header Fields Too Large",
                      501: "Not Implemented", 502: "Bad Gateway", 503: "Service Unavailable"][status] ?? "Error"
        let body = "cagent: \(reason)\n"
        return Array("HTTP/1.1 \(status) \(phrase)\r\nContent-Type: text/plain\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)".utf8)
    }
}
