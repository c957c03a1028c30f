import CagentCore

/// One line of `cagent doctor`: what was checked, what was found, and what to do when it is not fine.
package struct DoctorCheck: Sendable, Equatable {
    package enum Status: String, Sendable, Codable {
        case ok, warn, fail, info
    }

    package var name: String
    package var status: Status
    package var detail: String
    package var remedy: String?
    /// A failed required check makes `cagent doctor` exit non-zero: cagent cannot work without it.
    package var required: Bool

    package init(_ name: String, _ status: Status, _ detail: String, remedy: String? = nil, required: Bool = false) {
        self.name = name; self.status = status; self.detail = detail; self.remedy = remedy; self.required = required
    }
}

/// Renders checks as an aligned table for people, or as JSON for machines.
package enum DoctorRenderer {
    package static func table(_ checks: [DoctorCheck]) -> String {
        let nameWidth = max(5, checks.map { $0.name.count }.max() ?? 0)
        var out = pad("CHECK", nameWidth) + "  STATUS  DETAIL\n"
        for check in checks {
            out += pad(check.name, nameWidth) + "  " + pad(check.status.rawValue, 6) + "  "
                + TerminalEscape.escape(check.detail) + "\n"
            if let remedy = check.remedy, check.status == .fail || check.status == .warn {
                out += String(repeating: " ", count: nameWidth + 10) + "-> " + TerminalEscape.escape(remedy) + "\n"
            }
        }
        return out
    }

    package static func json(_ checks: [DoctorCheck], cleaned: [String]) -> String {
        var out = "{\"checks\":["
        out += checks.map { check in
            var fields = [
                "\"name\":" + JSONText.quote(check.name),
                "\"status\":" + JSONText.quote(check.status.rawValue),
                "\"required\":" + (check.required ? "true" : "false"),
                "\"detail\":" + JSONText.quote(check.detail),
            ]
            if let remedy = check.remedy { fields.append("\"remedy\":" + JSONText.quote(remedy)) }
            return "{" + fields.joined(separator: ",") + "}"
        }.joined(separator: ",")
        out += "],\"cleaned\":[" + cleaned.map(JSONText.quote).joined(separator: ",") + "]"
        out += ",\"ok\":" + (checks.contains { $0.required && $0.status == .fail } ? "false" : "true") + "}\n"
        return out
    }

    private static func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text : text + String(repeating: " ", count: width - text.count)
    }
}
