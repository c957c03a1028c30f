/// The one session-id scheme, for every session (enforce, learn, import, synthetic): 12 lowercase hex digits,
/// 48 random bits. Twelve because kernel objects carry the id in their names: the host-side interface
/// `cgs<id>` must fit IFNAMSIZ (15 characters), and NetworkSession refuses a longer one. Sessions are
/// ordered by their start time in the store, not by id.
package enum SessionID {
    package static let length = 12

    package static func new() -> String {
        var generator = SystemRandomNumberGenerator()
        let digits = Array("0123456789abcdef")
        return String((0..<length).map { _ in digits[Int(generator.next() % 16)] })
    }
}
