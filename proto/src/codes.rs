//! Numeric error codes (api.md §6; meanings from Tencent's table in
//! `shared/spec/reference/tencent-api-surface.md` §5). Both sides use these constants; the engine's
//! dispatch layer and the server's request handlers are the only places that choose them.

/// Success.
pub const OK: i32 = 0;

// ---- client side (engine) ----
/// Unexpected internal failure of the engine.
pub const ERR_SDK_INTERNAL: i32 = 7012;
/// Local database (store) operation failed.
pub const ERR_DATABASE: i32 = 6019;
/// Local I/O error.
pub const ERR_IO: i32 = 6022;
/// A response frame could not be parsed.
pub const ERR_PARSE_RESPONSE: i32 = 6001;
/// Invalid conversation.
pub const ERR_INVALID_CONVERSATION: i32 = 6004;
/// Invalid message receiver.
pub const ERR_INVALID_MSG_RECEIVER: i32 = 6032;
/// Invalid operation (e.g. resending a message that was sent).
pub const ERR_INVALID_OPERATION: i32 = 7014;
/// Interrupted (un-init or logout during the operation).
pub const ERR_INTERRUPTED: i32 = 7009;
/// Cancel failed: no such message or already sent.
pub const ERR_INVALID_CANCEL_MESSAGE: i32 = 8020;
/// Send failed because the message was cancelled.
pub const ERR_SEND_CANCELLED: i32 = 8021;
/// Merger nesting over the limit.
pub const ERR_MERGER_LAYERS_OVER_LIMIT: i32 = 8005;
/// Signaling: invalid invite id.
pub const ERR_SIGNALING_INVALID_INVITE_ID: i32 = 8010;
/// Signaling: no permission.
pub const ERR_SIGNALING_NO_PERMISSION: i32 = 8011;
/// A call before `init_sdk`.
pub const ERR_SDK_NOT_INITIALIZED: i32 = 6013;
/// A call that needs login before `login` succeeded.
pub const ERR_SDK_NOT_LOGGED_IN: i32 = 6014;
/// The same operation is already in progress.
pub const ERR_IN_PROCESS: i32 = 6015;
/// Invalid message elem (e.g. a forbidden `append_elem` combination).
pub const ERR_INVALID_MSG_ELEM: i32 = 6016;
/// Invalid parameters (desc names the field); unknown method.
pub const ERR_INVALID_PARAMETERS: i32 = 6017;
/// Request timed out.
pub const ERR_REQUEST_TIMEOUT: i32 = 6012;
/// Malformed JSON.
pub const ERR_INVALID_JSON: i32 = 6027;
/// Not an image file.
pub const ERR_INVALID_IMAGE: i32 = 6031;
/// UserSig expired (client side).
pub const ERR_USER_SIG_EXPIRED: i32 = 6206;
/// Kicked offline by another device's login.
pub const ERR_LOGIN_KICKED_OFF_BY_OTHER: i32 = 6208;
/// Invalid UserID.
pub const ERR_INVALID_USER_ID: i32 = 7003;
/// File not found.
pub const ERR_FILE_NOT_FOUND: i32 = 7004;
/// File too large.
pub const ERR_FILE_TOO_LARGE: i32 = 7005;
/// Empty file.
pub const ERR_EMPTY_FILE: i32 = 7006;
/// Feature not available (no plugin of that kind, not enabled).
pub const ERR_NOT_AVAILABLE: i32 = 7013;
/// Translation failed (`translate_text`: the translator plugin failed or panicked).
pub const ERR_TRANSLATE_TEXT_FAIL: i32 = 2117;
/// Speech-to-text failed (`convert_voice_to_text`: the recogniser plugin failed or panicked).
pub const ERR_VOICE_TO_TEXT_FAIL: i32 = 2118;
/// Message body over 12 KB (client side).
pub const ERR_MSG_TOO_LARGE: i32 = 8001;
/// Modify conflict.
pub const ERR_MODIFY_CONFLICT: i32 = 8006;
/// Invalid GroupID.
pub const ERR_INVALID_GROUP_ID: i32 = 8501;
/// Network disconnected.
pub const ERR_NET_DISCONNECT: i32 = 9508;
/// Connection establishment timed out / failed.
pub const ERR_NET_CONNECT_FAILED: i32 = 9510;
/// Timed out waiting for the server's response.
pub const ERR_NET_WAIT_ACK_TIMEOUT: i32 = 9520;
/// Request frame too large.
pub const ERR_NET_PKG_SIZE_LIMIT: i32 = 9522;

// ---- server side ----
/// UserSig expired.
pub const ERR_SVR_USER_SIG_EXPIRED: i32 = 70001;
/// UserSig empty.
pub const ERR_SVR_USER_SIG_EMPTY: i32 = 70002;
/// UserSig invalid (bad signature).
pub const ERR_SVR_USER_SIG_INVALID: i32 = 70003;
/// UserSig could not be decoded.
pub const ERR_SVR_USER_SIG_DECODE: i32 = 70005;
/// Identifier in the UserSig does not match the login user.
pub const ERR_SVR_USER_SIG_IDENTIFIER_MISMATCH: i32 = 70013;
/// SDKAppID in the UserSig does not match the requested app.
pub const ERR_SVR_USER_SIG_APP_MISMATCH: i32 = 70014;
/// Unknown SDKAppID.
pub const ERR_SVR_INVALID_SDK_APP_ID: i32 = 70020;
/// Request needs a logged-in session.
pub const ERR_SVR_NOT_LOGGED_IN: i32 = 70398;
/// Protocol version not supported.
pub const ERR_SVR_PROTOCOL_VERSION: i32 = 70399;
/// A frame or request could not be parsed.
pub const ERR_SVR_MALFORMED: i32 = 90001;
/// Invalid request parameters (server side; desc names the field).
pub const ERR_SVR_INVALID_PARAMS: i32 = 90002;
/// A frame over the size limit.
pub const ERR_SVR_FRAME_TOO_LARGE: i32 = 90003;
/// Too many requests (rate limited).
pub const ERR_SVR_RATE_LIMITED: i32 = 90004;
/// The receiver has blocked the sender.
pub const ERR_SVR_BLOCKED_BY_RECEIVER: i32 = 20007;
/// Revoke window passed.
pub const ERR_SVR_REVOKE_TIME_LIMIT: i32 = 20016;
/// Group: invalid parameters.
pub const ERR_SVR_GROUP_INVALID_PARAMS: i32 = 10004;
/// Group: no permission (e.g. not a member).
pub const ERR_SVR_GROUP_PERMISSION_DENIED: i32 = 10007;
/// Group: no such group.
pub const ERR_SVR_GROUP_NOT_FOUND: i32 = 10010;
/// Group: already a member.
pub const ERR_SVR_GROUP_ALREADY_MEMBER: i32 = 10013;
/// Group: full.
pub const ERR_SVR_GROUP_FULL: i32 = 10014;
/// Group: the group id is taken.
pub const ERR_SVR_GROUP_ID_IN_USE: i32 = 10021;
/// Group: the sender is muted.
pub const ERR_SVR_GROUP_SHUTUP_DENY: i32 = 10017;
/// Content blocked by the content filter.
pub const ERR_CONTENT_BLOCKED: i32 = 80001;
/// Message over 12 KB (server side).
pub const ERR_SVR_MSG_TOO_LARGE: i32 = 80002;
/// Server internal error.
pub const ERR_SVR_INTERNAL: i32 = 90000;
