import Foundation

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// A free TCP port on loopback (bound and released; fine for tests).
func freePort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = 0
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
    _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
    return Int(UInt16(bigEndian: addr.sin_port))
}

/// A loopback port bound but not listening, for as long as this lives:
/// connecting to it is refused, and no other process can take it meanwhile.
final class ClosedPort: @unchecked Sendable {
    let port: Int
    private let fd: Int32

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.fd = fd
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        _ = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        port = Int(UInt16(bigEndian: addr.sin_port))
        guard bound == 0 else { throw POSIXError(.EADDRINUSE) }
    }

    deinit { close(fd) }
}

/// One HTTP/1.1 request over a fresh connection: status and body.
func httpGet(_ url: String, headers: [String: String] = [:]) async throws -> (Data, Int) {
    try await httpRequest("GET", url, headers: headers)
}

func httpRequest(_ method: String, _ url: String, headers: [String: String] = [:], body: Data? = nil) async throws
    -> (Data, Int)
{
    var request = URLRequest(url: URL(string: url)!)
    request.httpMethod = method
    request.timeoutInterval = 10
    for (k, v) in headers { request.setValue(v, forHTTPHeaderField: k) }
    request.httpBody = body
    let (data, response) = try await URLSession.shared.data(for: request)
    return (data, (response as? HTTPURLResponse)?.statusCode ?? 0)
}

/// A raw TCP client for requests that arrive in pieces (slow bodies, drains).
final class SlowClient: @unchecked Sendable {
    private(set) var fd: Int32

    /// Connects to `port` on 127.0.0.1 from `source`, another loopback
    /// address when a test needs a second client (127.0.0.2 and up work on Linux).
    init(port: Int, from source: String? = nil) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        if let source {
            var local = sockaddr_in()
            local.sin_family = sa_family_t(AF_INET)
            local.sin_addr.s_addr = inet_addr(source)
            let bound = withUnsafePointer(to: &local) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard bound == 0 else { throw POSIXError(.EADDRNOTAVAIL) }
        }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = UInt16(port).bigEndian
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else { throw POSIXError(.ECONNREFUSED) }
        var tv = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    func send(_ text: String) throws {
        let sent = text.withCString { Glibc.send(fd, $0, strlen($0), Int32(MSG_NOSIGNAL)) }
        guard sent >= 0 else { throw POSIXError(.EPIPE) }
    }

    /// Reads until the peer closes or a full response with Content-Length arrived.
    func readResponse() -> String {
        var data = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n <= 0 { break }
            data += buffer[0..<n]
            let text = String(decoding: data, as: UTF8.self)
            if let headerEnd = text.range(of: "\r\n\r\n"),
                let lengthLine = text[..<headerEnd.lowerBound].split(separator: "\r\n").first(where: {
                    $0.lowercased().hasPrefix("content-length:")
                }),
                let length = Int(lengthLine.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)),
                text.utf8.count - text[..<headerEnd.upperBound].utf8.count >= length
            {
                break
            }
        }
        return String(decoding: data, as: UTF8.self)
    }

    /// Reads `count` responses (each with Content-Length) or until the peer
    /// closes; returns them in arrival order, and whether the peer closed.
    func readResponses(_ count: Int) -> (responses: [String], closed: Bool) {
        var data = [UInt8]()
        var responses: [String] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            while let end = Self.firstResponseLength(data) {
                responses.append(String(decoding: data[..<end], as: UTF8.self))
                data.removeFirst(end)
            }
            if responses.count >= count { return (responses, false) }
            let n = recv(fd, &buffer, buffer.count, 0)
            if n <= 0 { return (responses, true) }
            data += buffer[0..<n]
        }
    }

    /// After a response, true when the peer has closed the connection.
    /// Reads until `marker` has arrived (or the peer closes), returning all read so far.
    /// Reads byte by byte, so nothing after the marker is consumed.
    func readUntil(_ marker: String) -> String {
        var data = [UInt8]()
        var byte: UInt8 = 0
        while !String(decoding: data, as: UTF8.self).hasSuffix(marker) {
            guard recv(fd, &byte, 1, 0) == 1 else { break }
            data.append(byte)
        }
        return String(decoding: data, as: UTF8.self)
    }

    /// What arrives within `time` (until the peer closes or a full response is in).
    func readWithin(_ time: Duration) -> String {
        var tv = timeval(tv_sec: Int(time.components.seconds), tv_usec: Int(time.components.attoseconds / 1_000_000_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        return readResponse()
    }

    /// Whether the peer has closed, waiting up to `waiting` for it to; data that arrives meanwhile is left unread.
    func peerClosed(waiting: Duration) -> Bool {
        var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let millis = Int32(waiting.components.seconds * 1000 + waiting.components.attoseconds / 1_000_000_000_000_000)
        guard poll(&descriptor, 1, millis) == 1 else { return false }
        var byte: UInt8 = 0
        let n = recv(fd, &byte, 1, Int32(MSG_PEEK | MSG_DONTWAIT))
        // An orderly close, or a reset (the server closed and our later bytes were refused).
        return n == 0 || (n < 0 && (errno == ECONNRESET || errno == EPIPE))
    }

    func peerClosed() -> Bool {
        var byte: UInt8 = 0
        return recv(fd, &byte, 1, 0) == 0
    }

    private static func firstResponseLength(_ data: [UInt8]) -> Int? {
        let text = String(decoding: data, as: UTF8.self)
        guard let headerEnd = text.range(of: "\r\n\r\n"),
            let lengthLine = text[..<headerEnd.lowerBound].split(separator: "\r\n").first(where: {
                $0.lowercased().hasPrefix("content-length:")
            }),
            let length = Int(lengthLine.split(separator: ":")[1].trimmingCharacters(in: .whitespaces))
        else { return nil }
        let total = text[..<headerEnd.upperBound].utf8.count + length
        return data.count >= total ? total : nil
    }

    /// Idempotent, so a `defer` can back up an explicit close.
    func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }
}
