import Foundation
import Testing

@testable import UserAPI

@Suite("User ids (UUIDv7)")
struct UserIDTests {
    @Test("ids are RFC 9562 version 7 UUIDs with the variant bits set")
    func format() throws {
        let id = UserID.make()
        let uuid = try #require(UUID(uuidString: id), "not a UUID: \(id)")
        #expect(id == id.lowercased())
        #expect(uuid.uuid.6 >> 4 == 7)
        #expect(uuid.uuid.8 >> 6 == 0b10)
    }

    @Test("ids carry the creation time in their first 48 bits")
    func embedsTime() throws {
        let before = Timestamp.nowMillis()
        let id = UserID.make()
        let after = Timestamp.nowMillis()
        let hex = id.replacingOccurrences(of: "-", with: "").prefix(12)
        let millis = try #require(Int64(hex, radix: 16))
        #expect(millis >= before && millis <= after + 1)
    }

    @Test("ids made one after another sort in creation order, even within one millisecond")
    func monotonic() {
        let ids = (0..<20_000).map { _ in UserID.make() }
        #expect(ids == ids.sorted())
        #expect(Set(ids).count == ids.count)
    }

    @Test("ids from concurrent tasks are unique")
    func concurrentUnique() async {
        let ids = await withTaskGroup(of: [String].self) { group in
            for _ in 0..<8 { group.addTask { (0..<2000).map { _ in UserID.make() } } }
            var all: [String] = []
            for await chunk in group { all += chunk }
            return all
        }
        #expect(Set(ids).count == 16_000)
    }

    @Test(
        "canonical form accepts any UUID case and rejects everything else",
        arguments: [
            ("01A20175-AF07-73A7-81A9-54B29C24C733", "01a20175-af07-73a7-81a9-54b29c24c733"),
            ("01a20175-af07-73a7-81a9-54b29c24c733", "01a20175-af07-73a7-81a9-54b29c24c733"),
            ("01a20175af0773a781a954b29c24c733", nil),
            ("01a20175-af07-73a7-81a9-54b29c24c73", nil),
            ("01a20175-af07-73a7-81a9-54b29c24c73g", nil),
            ("../../etc/passwd", nil),
            ("", nil),
        ] as [(String, String?)])
    func canonical(input: String, expected: String?) {
        #expect(UserID.canonical(input) == expected)
    }
}

@Suite("RFC 3339 timestamps")
struct TimestampTests {
    @Test(
        "formatting matches Foundation's ISO 8601 formatter across eras",
        arguments: [
            Int64(0), 1_700_000_000_123, 951_782_400_999, 4_102_444_799_000, -86_400_001, 1_582_934_400_000,
        ])
    func matchesFoundation(millis: Int64) {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        formatter.timeZone = TimeZone(identifier: "UTC")
        let expected = formatter.string(from: Date(timeIntervalSince1970: Double(millis) / 1000))
        #expect(Timestamp.rfc3339(millis: millis) == expected)
    }

    @Test func knownValue() {
        #expect(Timestamp.rfc3339(millis: 1_795_323_600_007) == "2026-11-22T05:00:00.007Z")
    }
}
