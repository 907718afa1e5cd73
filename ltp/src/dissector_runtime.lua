-- The fixed part of every dissector `ltp dissector` writes (ltp/src/dissector_runtime.lua).
-- The generated part before it defines: proto, HEADER_LEN, MAX_PDU_LEN, F (the ProtoFields
-- of the header: F.length, F.type, F.msg, F.body), HEADER_FIELDS ({pf, offset, width, le},
-- in wire order), E (the ProtoExperts), MESSAGES (per type number as a decimal string:
-- {name, fields = {{pf, name, kind, width (nil: the rest of the body), le}}}), TYPE_OFFSET,
-- TYPE_WIDTH, frame_len(tvb, base) (the whole frame's length from the length field at base)
-- and type_key(tvb) (the type field as a decimal string).

local field_list = { F.msg, F.body }
for _, h in ipairs(HEADER_FIELDS) do table.insert(field_list, h.pf) end
for _, m in pairs(MESSAGES) do
  for _, f in ipairs(m.fields) do table.insert(field_list, f.pf) end
end
proto.fields = field_list
proto.experts = {
  E.bad_length, E.short_body, E.trailing_bytes, E.bad_bool, E.bad_utf8, E.unknown_type,
}

-- dissect_tcp_pdus calls this with at least HEADER_LEN bytes at offset. A bad length takes
-- the rest of the segment, which dissect_pdu then flags.
local function get_pdu_len(tvb, pinfo, offset)
  local len = frame_len(tvb, offset)
  if len < HEADER_LEN or len > MAX_PDU_LEN then return tvb:len() - offset end
  return len
end

local function add_field(tree, pf, range, le)
  if le then return tree:add_le(pf, range) end
  return tree:add(pf, range)
end

-- The column shows the messages of a packet separated by commas.
local function show_in_info(pinfo, text)
  if tostring(pinfo.cols.info) == "" then
    pinfo.cols.info:set(text)
  else
    pinfo.cols.info:append(", " .. text)
  end
end

-- The offset of the first byte of s that does not start a well-formed UTF-8 sequence
-- (Unicode's table 3-7: no overlong forms, no surrogates, nothing past U+10FFFF), or nil.
local function invalid_utf8_at(s)
  local i, n = 1, #s
  while i <= n do
    local c = s:byte(i)
    local len, lo, hi = 1, 0x80, 0xBF
    if c < 0x80 then len = 1
    elseif c >= 0xC2 and c <= 0xDF then len = 2
    elseif c == 0xE0 then len, lo = 3, 0xA0
    elseif c == 0xED then len, hi = 3, 0x9F
    elseif c >= 0xE1 and c <= 0xEF then len = 3
    elseif c == 0xF0 then len, lo = 4, 0x90
    elseif c == 0xF4 then len, hi = 4, 0x8F
    elseif c >= 0xF1 and c <= 0xF3 then len = 4
    else return i - 1 end
    for k = 1, len - 1 do
      local b = s:byte(i + k)
      if b == nil then return i - 1 end
      if k == 1 and (b < lo or b > hi) then return i - 1 end
      if k > 1 and (b < 0x80 or b > 0xBF) then return i - 1 end
    end
    i = i + len
  end
  return nil
end

local function dissect_body(tvb, tree, msg)
  local total = tvb:len()
  local offset = HEADER_LEN
  for _, field in ipairs(msg.fields) do
    local left = total - offset
    if field.width == nil then
      if field.kind == "string" then
        local range = tvb:range(offset, left)
        local item = tree:add_packet_field(field.pf, range, ENC_UTF_8)
        local bad = invalid_utf8_at(range:raw())
        if bad ~= nil then
          item:add_proto_expert_info(E.bad_utf8, string.format(
            "%s: field %s: invalid UTF-8 at byte %d", msg.name, field.name, bad))
        end
      else
        tree:add(field.pf, tvb:range(offset, left))
      end
      offset = total
    elseif left < field.width then
      tree:add_proto_expert_info(E.short_body, string.format(
        "%s: field %s (%s) needs %d bytes, %d left", msg.name, field.name, field.kind,
        field.width, left))
      if left > 0 then tree:add(F.body, tvb:range(offset, left)) end
      return
    else
      local range = tvb:range(offset, field.width)
      local item = add_field(tree, field.pf, range, field.le)
      if field.kind == "bool" and range:uint() > 1 then
        item:add_proto_expert_info(E.bad_bool, string.format(
          "%s: field %s is %d, not a bool (0 or 1)", msg.name, field.name, range:uint()))
      end
      offset = offset + field.width
    end
  end
  if offset < total then
    tree:add_proto_expert_info(E.trailing_bytes, string.format(
      "%s: %d bytes left after the last field", msg.name, total - offset))
    tree:add(F.body, tvb:range(offset, total - offset))
  end
end

local function dissect_pdu(tvb, pinfo, tree)
  local total = tvb:len()
  local item = tree:add(proto, tvb:range(0, total))
  for _, h in ipairs(HEADER_FIELDS) do
    add_field(item, h.pf, tvb:range(h.offset, h.width), h.le)
  end
  local len = frame_len(tvb, 0)
  if len < HEADER_LEN or len > MAX_PDU_LEN then
    item:add_proto_expert_info(E.bad_length, string.format(
      "the length field declares a %.0f-byte frame, outside %d..%d", len, HEADER_LEN,
      MAX_PDU_LEN))
    if total > HEADER_LEN then item:add(F.body, tvb:range(HEADER_LEN, total - HEADER_LEN)) end
    show_in_info(pinfo, "[bad length]")
    return total
  end
  local key = type_key(tvb)
  local msg = MESSAGES[key]
  if msg == nil then
    item:append_text(", type " .. key)
    show_in_info(pinfo, "type " .. key)
    item:add_proto_expert_info(E.unknown_type, "type " .. key .. " is not in the schema")
    if total > HEADER_LEN then item:add(F.body, tvb:range(HEADER_LEN, total - HEADER_LEN)) end
    return total
  end
  item:add(F.msg, tvb:range(TYPE_OFFSET, TYPE_WIDTH), msg.name):set_generated()
  item:append_text(", " .. msg.name)
  show_in_info(pinfo, msg.name)
  dissect_body(tvb, item, msg)
  return total
end

function proto.dissector(tvb, pinfo, tree)
  pinfo.cols.protocol:set(proto.name)
  pinfo.cols.info:set("")
  return dissect_tcp_pdus(tvb, tree, HEADER_LEN, get_pdu_len, dissect_pdu, true)
end

local tcp_port = DissectorTable.get("tcp.port")
tcp_port:add_for_decode_as(proto)
