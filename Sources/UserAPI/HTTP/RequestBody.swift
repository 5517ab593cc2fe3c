import HTTPTypes
import Hummingbird
import NIOCore

/// Reading JSON request bodies with the checks every write route shares, in
/// the order a client can act on: media type (415), size (413), syntax (400).
enum JSONBody {
    static let json = "application/json"
    static let mergePatch = "application/merge-patch+json"

    static func read(
        _ request: Request, context: AppRequestContext, maxSize: Int, accepting types: [String]
    ) async throws -> JSONValue {
        try checkContentType(request.headers[.contentType], accepting: types)
        if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > maxSize {
            throw Problem.contentTooLarge(limit: maxSize)
        }
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: maxSize)
        } catch let error as any HTTPResponseError where error.status == .contentTooLarge {
            throw Problem.contentTooLarge(limit: maxSize)
        }
        return try JSONValue.parse(buffer.readableBytesView)
    }

    static func checkContentType(_ header: String?, accepting types: [String]) throws(Problem) {
        // What nearly every client sends; the parsing below is for the rest.
        if let header, types.contains(header) { return }
        let expected = types.joined(separator: " or ")
        guard let header, !header.isEmpty else {
            throw Problem.unsupportedMediaType(
                "Send the body as JSON with Content-Type: \(expected).", accept: types.joined(separator: ", "))
        }
        let parts = header.split(separator: ";")
        let mediaType = parts[0].trimmingCharacters(in: .whitespaces).lowercased()
        guard types.contains(mediaType) else {
            throw Problem.unsupportedMediaType(
                "Content-Type \(mediaType) is not supported here; use \(expected).", accept: types.joined(separator: ", "))
        }
        for parameter in parts.dropFirst() {
            let pair = parameter.split(separator: "=", maxSplits: 1).map {
                $0.trimmingCharacters(in: .whitespaces).lowercased()
            }
            if pair.count == 2, pair[0] == "charset", pair[1].trimmingCharacters(in: ["\""]) != "utf-8" {
                throw Problem.unsupportedMediaType(
                    "Only UTF-8 is accepted; send charset=utf-8 or no charset.", accept: types.joined(separator: ", "))
            }
        }
    }
}

extension Substring {
    func trimmingCharacters(in set: Set<Character>) -> String {
        var start = startIndex
        var end = endIndex
        while start < end, set.contains(self[start]) { start = index(after: start) }
        while end > start, set.contains(self[index(before: end)]) { end = index(before: end) }
        return String(self[start..<end])
    }
}

extension String {
    func trimmingCharacters(in set: Set<Character>) -> String { self[...].trimmingCharacters(in: set) }
}

extension Set where Element == Character {
    static let whitespaces: Set<Character> = [" ", "\t"]
}
