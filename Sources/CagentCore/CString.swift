extension String {
    /// The text of a NUL-terminated C buffer (getcwd, inet_ntop, if_indextoname): up to the first NUL, invalid
    /// UTF-8 repaired. `String(cString:)` on an array is deprecated.
    package init(nulTerminated buffer: [CChar]) {
        self.init(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
