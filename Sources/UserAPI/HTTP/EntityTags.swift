/// `If-Match` / `If-None-Match` evaluation (RFC 9110 §13.1).
enum EntityTags {
    /// The entity tags listed in a header, with `*` kept as is.
    static func parse(_ header: String) -> [String] {
        header.split(separator: ",").map { String($0).trimmingWhitespace() }.filter { !$0.isEmpty }
    }

    /// Strong comparison, as `If-Match` requires: weak tags never match.
    static func ifMatch(_ header: String?, current: User) -> Bool {
        guard let header else { return true }
        let tags = parse(header)
        return tags.contains("*") || tags.contains(current.etag)
    }

    /// Weak comparison, as `If-None-Match` uses: true when the client's copy is current.
    static func noneMatchSatisfiedByCurrent(_ header: String?, current: User) -> Bool {
        guard let header else { return false }
        let tags = parse(header)
        if tags.contains("*") { return true }
        return tags.contains { tag in
            (tag.hasPrefix("W/") ? String(tag.dropFirst(2)) : tag) == current.etag
        }
    }
}
