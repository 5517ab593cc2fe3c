/// One change to a user, as the feed tells it: written in the same
/// transaction as the change, numbered by `seq` in commit order.
public struct UserEvent: Sendable, Equatable {
    public enum Kind: String, Sendable {
        case created = "user.created"
        case updated = "user.updated"
        case deleted = "user.deleted"
    }

    public var seq: Int64
    public var kind: Kind
    public var id: String
    /// The user's JSON after the change (`User.writeJSON`); nil for deletes.
    public var user: [UInt8]?
    /// Milliseconds since the Unix epoch.
    public var at: Int64

    /// The event a change records, before the store numbers it.
    static func recording(_ kind: Kind, _ user: User, at: Int64 = Timestamp.nowMillis()) -> UserEvent {
        var json: [UInt8]?
        if kind != .deleted {
            var writer = JSONWriter(capacity: 256)
            user.writeJSON(into: &writer)
            json = writer.bytes
        }
        return UserEvent(seq: 0, kind: kind, id: user.id, user: json, at: at)
    }

    /// `{"seq":…,"type":…,"id":…,"user":{…}|null,"at":…}`: the feed's message.
    func writeJSON(into writer: inout JSONWriter) {
        writer.beginObject()
        writer.key("seq")
        writer.number(Int(seq))
        writer.key("type")
        writer.string(kind.rawValue)
        writer.key("id")
        writer.string(id)
        writer.key("user")
        if let user { writer.raw(user) } else { writer.null() }
        writer.key("at")
        writer.rawString { Timestamp.appendRFC3339(millis: at, to: &$0) }
        writer.endObject()
    }

    var json: [UInt8] {
        var writer = JSONWriter(capacity: 64 + (user?.count ?? 0))
        writeJSON(into: &writer)
        return writer.bytes
    }
}

/// Where the feed stands: the oldest event still kept and the newest seq handed out.
public struct EventBounds: Sendable, Equatable {
    public var oldest: Int64?
    public var latest: Int64
}
