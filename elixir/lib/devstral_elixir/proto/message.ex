defmodule DevstralElixir.Proto.Message do
  @moduledoc """
  Generic protobuf encoding and decoding, driven by the schema that every
  generated message module returns from `__schema__/0`.

  The generated modules (see `scripts/protoc_gen_elixir.py`) are structs with
  `encode/1`, `decode/1` and `decode!/1` that call into this module. A schema
  is built at compile time by `schema/2` from a list of field descriptions:

      %{number: 1, name: :call_id, type: :uint64, kind: :scalar}

  where `type` is a scalar type atom (`:int32`, `:string`, `:double`, ...),
  `{:enum, module}`, `{:message, module}` or `{:map, key_type, value_type}`,
  and `kind` is one of

    * `:scalar` - implicit presence: the proto3 default is not written;
    * `:optional` - explicit presence (proto3 `optional`, sub-messages):
      `nil` means absent, anything else is written, zero included;
    * `:repeated` - a list; numeric ones are written packed unless the field
      says `packed: false`;
    * `:map` - an Elixir map;
    * `{:oneof, name}` - one case of the oneof `name`, whose struct field holds
      `{field_name, value}` or `nil`.

  ## Compatibility with Python's protobuf (upb)

  Encoding writes fields in field-number order and produces the same bytes as
  Python's `SerializeToString(deterministic=True)`, including its map order:
  string keys ascending bytewise except that a key sorts *before* its own
  prefixes (`"ab"`, `"a"`, `"b"`, `""`), and integer and bool keys descending by
  their unsigned two's-complement bits (`-1`, `2`, `1`, `0`). The golden vectors
  in `tests/golden/vectors.json` pin this.

  (Python's plain `SerializeToString()` may order map entries differently;
  either order decodes the same.)

  Decoding follows upb too: it accepts packed and unpacked repeated scalars,
  keeps the last value of a singular field that appears twice, merges a
  sub-message that appears twice, and skips unknown fields, including fields
  whose wire type does not match the schema and whole map entries holding an
  unknown field. Sub-messages nest at most 100 deep. Malformed input gives
  `{:error, reason}`, never an exception. Unknown fields are not kept, so
  re-encoding drops them.
  """

  import Bitwise

  alias DevstralElixir.Proto.Wire

  @typedoc "A scalar protobuf type."
  @type scalar_type ::
          :int32
          | :int64
          | :uint32
          | :uint64
          | :sint32
          | :sint64
          | :fixed32
          | :fixed64
          | :sfixed32
          | :sfixed64
          | :bool
          | :float
          | :double
          | :string
          | :bytes
  @type field_type ::
          scalar_type() | {:enum, module()} | {:message, module()} | {:map, scalar_type(), term()}
  @type kind :: :scalar | :optional | :repeated | :map | {:oneof, atom()}
  @typedoc "One field, as written in a generated module."
  @type field :: %{
          required(:number) => pos_integer(),
          required(:name) => atom(),
          required(:type) => field_type(),
          required(:kind) => kind(),
          optional(:packed) => boolean(),
          optional(:entry) => schema()
        }
  @typedoc "What `__schema__/0` returns."
  @type schema :: %{
          name: String.t(),
          fields: [field()],
          by_number: %{pos_integer() => field()},
          repeated: [atom()],
          oneofs: %{atom() => [atom()]}
        }

  @max_depth 100
  @min_int32 -0x8000_0000
  @max_int32 0x7FFF_FFFF
  @min_int64 -0x8000_0000_0000_0000
  @max_int64 0x7FFF_FFFF_FFFF_FFFF
  @max_uint32 0xFFFF_FFFF
  @max_uint64 0xFFFF_FFFF_FFFF_FFFF

  @varint_types [:int32, :int64, :uint32, :uint64, :sint32, :sint64, :bool]
  @fixed32_types [:fixed32, :sfixed32, :float]
  @fixed64_types [:fixed64, :sfixed64, :double]

  # ---------------------------------------------------------------------------
  # Schema
  # ---------------------------------------------------------------------------

  @doc """
  Builds a message schema from its full protobuf name and field list; called
  at compile time by the generated modules.
  """
  @spec schema(String.t(), [map()]) :: schema()
  def schema(full_name, fields) do
    fields =
      fields
      |> Enum.map(&normalize_field(&1, full_name))
      |> Enum.sort_by(& &1.number)

    %{
      name: full_name,
      fields: fields,
      by_number: Map.new(fields, &{&1.number, &1}),
      repeated: for(%{kind: :repeated, name: name} <- fields, do: name),
      oneofs:
        fields
        |> Enum.filter(&match?(%{kind: {:oneof, _}}, &1))
        |> Enum.group_by(fn %{kind: {:oneof, oneof}} -> oneof end, & &1.name)
    }
  end

  defp normalize_field(%{kind: :repeated, type: type} = field, _full_name) do
    Map.put_new(field, :packed, packable?(type))
  end

  defp normalize_field(%{kind: :map, type: {:map, key_type, value_type}} = field, full_name) do
    value_kind = if match?({:message, _}, value_type), do: :optional, else: :scalar

    entry =
      schema("#{full_name}.#{field.name} entry", [
        %{number: 1, name: :key, type: key_type, kind: :scalar},
        %{number: 2, name: :value, type: value_type, kind: value_kind}
      ])

    Map.put(field, :entry, entry)
  end

  defp normalize_field(field, _full_name), do: field

  defp packable?({:enum, _}), do: true

  defp packable?(type),
    do: type in @varint_types or type in @fixed32_types or type in @fixed64_types

  # ---------------------------------------------------------------------------
  # Encoding
  # ---------------------------------------------------------------------------

  @doc """
  Encodes a message struct to a binary. Raises `ArgumentError` naming the
  field when a value does not fit its type.
  """
  @spec encode(struct()) :: binary()
  def encode(msg), do: msg |> encode_iodata() |> IO.iodata_to_binary()

  @doc "Like `encode/1`, but returns iodata."
  @spec encode_iodata(struct()) :: iodata()
  def encode_iodata(%mod{} = msg) do
    %{fields: fields, name: name, oneofs: oneofs} = mod.__schema__()
    Enum.each(oneofs, &check_oneof(&1, msg, name))
    Enum.map(fields, &encode_field(&1, msg, name))
  end

  defp check_oneof({oneof, cases}, msg, where) do
    case Map.fetch!(msg, oneof) do
      nil ->
        :ok

      {name, _value} = set when is_atom(name) ->
        name in cases or bad_oneof!(where, oneof, cases, set)

      other ->
        bad_oneof!(where, oneof, cases, other)
    end
  end

  defp bad_oneof!(where, oneof, cases, got) do
    expected = Enum.map_join(cases, " | ", &"{#{inspect(&1)}, value}")
    bad_value!({where, oneof}, "nil | #{expected}", got)
  end

  defp encode_field(%{kind: {:oneof, oneof}, name: name} = field, msg, where) do
    case Map.fetch!(msg, oneof) do
      {^name, value} -> [tag(field), encode_value(field.type, value, {where, name})]
      _ -> []
    end
  end

  defp encode_field(%{kind: :scalar, name: name, type: type} = field, msg, where) do
    value = Map.fetch!(msg, name)

    if default?(type, value),
      do: [],
      else: [tag(field), encode_value(type, value, {where, name})]
  end

  defp encode_field(%{kind: :optional, name: name} = field, msg, where) do
    case Map.fetch!(msg, name) do
      nil -> []
      value -> [tag(field), encode_value(field.type, value, {where, name})]
    end
  end

  defp encode_field(%{kind: :repeated, name: name, type: type} = field, msg, where) do
    case Map.fetch!(msg, name) do
      [] ->
        []

      values when is_list(values) ->
        if field.packed do
          items = encode_packed(type, values, {where, name})
          [Wire.encode_tag(field.number, 2), Wire.encode_length_delimited(items)]
        else
          key = tag(field)
          Enum.map(values, &[key, encode_value(type, &1, {where, name})])
        end

      other ->
        bad_value!({where, name}, "a list", other)
    end
  end

  defp encode_field(%{kind: :map, name: name} = field, msg, where) do
    %{type: {:map, key_type, value_type}} = field

    case Map.fetch!(msg, name) do
      map when map == %{} ->
        []

      map when is_map(map) ->
        key = Wire.encode_tag(field.number, 2)
        key_tag = Wire.encode_tag(1, wire_type(key_type))
        value_tag = Wire.encode_tag(2, wire_type(value_type))

        for {k, v} <- sort_map(map, key_type) do
          entry = [
            key_tag,
            encode_value(key_type, k, {where, name}),
            value_tag,
            encode_value(value_type, v, {where, name})
          ]

          [key, Wire.encode_length_delimited(entry)]
        end

      other ->
        bad_value!({where, name}, "a map", other)
    end
  end

  # Embeddings are long float lists: write plain numbers in one pass, and
  # leave anything else (infinities, wrong types) to encode_value/3.
  defp encode_packed(:float, values, where) do
    for x <- values, into: <<>>, do: <<x::little-float-32>>
  rescue
    ArgumentError -> Enum.map(values, &encode_value(:float, &1, where))
  end

  defp encode_packed(:double, values, where) do
    for x <- values, into: <<>>, do: <<x::little-float-64>>
  rescue
    ArgumentError -> Enum.map(values, &encode_value(:double, &1, where))
  end

  defp encode_packed(type, values, where), do: Enum.map(values, &encode_value(type, &1, where))

  defp tag(%{number: number, type: type}), do: Wire.encode_tag(number, wire_type(type))

  defp wire_type(type) when type in @varint_types, do: 0
  defp wire_type({:enum, _}), do: 0
  defp wire_type(type) when type in @fixed64_types, do: 1
  defp wire_type(type) when type in @fixed32_types, do: 5
  defp wire_type(_string_bytes_message_or_map), do: 2

  # Implicit-presence fields skip the proto3 default. A float is default only
  # when all its bits are zero, so -0.0 is written, as upb does.
  defp default?(type, value) when type in [:float, :double],
    do: value === 0 or (is_float(value) and <<value::float-64>> == <<0::64>>)

  defp default?({:enum, mod}, value) when is_atom(value) do
    mod.value(value) == 0
  rescue
    # An unknown name: encode_value/3 reports it with the field's name.
    ArgumentError -> false
  end

  defp default?(:string, value), do: value == ""
  defp default?(:bytes, value), do: value == ""
  defp default?(:bool, value), do: value == false
  defp default?(_integer_or_enum, value), do: value === 0

  # upb's deterministic order; see the moduledoc.
  defp sort_map(map, :string), do: Enum.sort(map, &string_key_first?/2)

  defp sort_map(map, :bool), do: Enum.sort_by(map, fn {k, _} -> k == true end, :desc)

  defp sort_map(map, type) when type in [:int32, :sint32, :sfixed32, :uint32, :fixed32],
    do: Enum.sort_by(map, fn {k, _} -> k &&& @max_uint32 end, :desc)

  defp sort_map(map, _64_bit_type),
    do: Enum.sort_by(map, fn {k, _} -> k &&& @max_uint64 end, :desc)

  defp string_key_first?({a, _}, {b, _}) when is_binary(a) and is_binary(b) do
    common = min(byte_size(a), byte_size(b))
    prefix_a = binary_part(a, 0, common)
    prefix_b = binary_part(b, 0, common)

    cond do
      prefix_a < prefix_b -> true
      prefix_a > prefix_b -> false
      true -> byte_size(a) >= byte_size(b)
    end
  end

  # Non-binary keys are reported by encode_value/3.
  defp string_key_first?(a, b), do: a <= b

  defp encode_value(:int32, v, _) when is_integer(v) and v >= @min_int32 and v <= @max_int32,
    do: Wire.encode_varint(v)

  defp encode_value(:int64, v, _) when is_integer(v) and v >= @min_int64 and v <= @max_int64,
    do: Wire.encode_varint(v)

  defp encode_value(:uint32, v, _) when is_integer(v) and v >= 0 and v <= @max_uint32,
    do: Wire.encode_varint(v)

  defp encode_value(:uint64, v, _) when is_integer(v) and v >= 0 and v <= @max_uint64,
    do: Wire.encode_varint(v)

  defp encode_value(:sint32, v, _) when is_integer(v) and v >= @min_int32 and v <= @max_int32,
    do: Wire.encode_varint(Wire.zigzag_encode(v))

  defp encode_value(:sint64, v, _) when is_integer(v) and v >= @min_int64 and v <= @max_int64,
    do: Wire.encode_varint(Wire.zigzag_encode(v))

  defp encode_value(:fixed32, v, _) when is_integer(v) and v >= 0 and v <= @max_uint32,
    do: Wire.encode_fixed32(v)

  defp encode_value(:fixed64, v, _) when is_integer(v) and v >= 0 and v <= @max_uint64,
    do: Wire.encode_fixed64(v)

  defp encode_value(:sfixed32, v, _)
       when is_integer(v) and v >= @min_int32 and v <= @max_int32,
       do: Wire.encode_fixed32(v)

  defp encode_value(:sfixed64, v, _)
       when is_integer(v) and v >= @min_int64 and v <= @max_int64,
       do: Wire.encode_fixed64(v)

  defp encode_value(:bool, true, _), do: <<1>>
  defp encode_value(:bool, false, _), do: <<0>>

  defp encode_value(:float, v, _)
       when is_float(v) or is_integer(v) or v in [:infinity, :negative_infinity, :nan],
       do: Wire.encode_float(v)

  defp encode_value(:double, v, _)
       when is_float(v) or is_integer(v) or v in [:infinity, :negative_infinity, :nan],
       do: Wire.encode_double(v)

  defp encode_value(:string, v, where) when is_binary(v) do
    if String.valid?(v),
      do: Wire.encode_length_delimited(v),
      else: bad_value!(where, "valid UTF-8 for a string field", v)
  end

  defp encode_value(:bytes, v, _) when is_binary(v), do: Wire.encode_length_delimited(v)

  defp encode_value({:enum, _mod}, v, _)
       when is_integer(v) and v >= @min_int32 and v <= @max_int32,
       do: Wire.encode_varint(v)

  defp encode_value({:enum, mod}, v, where) when is_atom(v) do
    Wire.encode_varint(mod.value(v))
  rescue
    ArgumentError -> bad_value!(where, "a value of #{inspect(mod)}", v)
  end

  defp encode_value({:message, mod}, %mod{} = v, _),
    do: Wire.encode_length_delimited(encode_iodata(v))

  defp encode_value({:message, mod}, v, where), do: bad_value!(where, "a %#{inspect(mod)}{}", v)
  defp encode_value(type, v, where), do: bad_value!(where, "#{type}", v)

  defp bad_value!({message, field}, expected, value) do
    raise ArgumentError,
          "cannot encode #{message}.#{field}: expected #{expected}, got: #{inspect(value)}"
  end

  # ---------------------------------------------------------------------------
  # Decoding
  # ---------------------------------------------------------------------------

  @doc """
  Decodes a binary into a struct of the message module `mod`.
  Returns `{:error, reason}` on malformed input; never raises on it.
  """
  @spec decode(module(), binary()) :: {:ok, struct()} | {:error, String.t()}
  def decode(mod, bin) when is_binary(bin) do
    {:ok, decode_message(mod, bin, 0)}
  catch
    {:proto_decode_error, reason} -> {:error, reason}
  end

  def decode(mod, other), do: {:error, "cannot decode #{inspect(mod)} from #{inspect(other)}"}

  @doc "Like `decode/2`, but raises `ArgumentError` on malformed input."
  @spec decode!(module(), binary()) :: struct()
  def decode!(mod, bin) do
    case decode(mod, bin) do
      {:ok, msg} -> msg
      {:error, reason} -> raise ArgumentError, "cannot decode #{inspect(mod)}: #{reason}"
    end
  end

  defp decode_message(_mod, _bin, depth) when depth > @max_depth,
    do: fail("messages nested deeper than #{@max_depth}")

  defp decode_message(mod, bin, depth) do
    schema = mod.__schema__()
    acc = decode_fields(bin, schema, mod.__struct__(), depth)
    reverse_repeated(acc, schema)
  end

  # Merging a second occurrence of a sub-message into the first one.
  defp merge_message(_msg, _bin, depth) when depth > @max_depth,
    do: fail("messages nested deeper than #{@max_depth}")

  defp merge_message(%mod{} = msg, bin, depth) do
    schema = mod.__schema__()
    acc = decode_fields(bin, schema, reverse_repeated(msg, schema), depth)
    reverse_repeated(acc, schema)
  end

  defp reverse_repeated(acc, %{repeated: names}) do
    Enum.reduce(names, acc, fn name, acc -> Map.update!(acc, name, &:lists.reverse/1) end)
  end

  defp decode_fields(<<>>, _schema, acc, _depth), do: acc

  defp decode_fields(bin, schema, acc, depth) do
    case Wire.decode_tag(bin) do
      {:ok, number, wire_type, rest} ->
        {acc, rest} =
          case schema.by_number do
            %{^number => field} -> decode_field(field, wire_type, rest, acc, schema, depth)
            _ -> {skipped(acc), skip(number, wire_type, rest, schema)}
          end

        decode_fields(rest, schema, acc, depth)

      {:error, reason} ->
        fail("#{schema.name}: #{reason}")
    end
  end

  # Map entries remember that they held an unknown field: upb then keeps the
  # whole entry as an unknown field of the message, so it is not in the map.
  defp skipped(%{__struct__: _} = msg), do: msg
  defp skipped(entry), do: Map.put(entry, :unknown, true)

  defp skip(number, wire_type, bin, schema) do
    case Wire.skip_field(number, wire_type, bin) do
      {:ok, rest} -> rest
      {:error, reason} -> fail("#{schema.name} field #{number}: #{reason}")
    end
  end

  defp decode_field(%{type: type} = field, wire_type, bin, acc, schema, depth) do
    cond do
      wire_type == wire_type(type) ->
        {value, rest} = read_value(type, bin, field, schema, depth, Map.get(acc, target(field)))
        {put_value(field, acc, value), rest}

      wire_type == 2 and field.kind == :repeated and packable?(type) ->
        {chunk, rest} = read(Wire.decode_length_delimited(bin), field, schema)
        values = read_packed(type, chunk, field, schema, Map.fetch!(acc, field.name))
        {Map.put(acc, field.name, values), rest}

      true ->
        # A wire type that does not match the schema makes the field unknown.
        {skipped(acc), skip(field.number, wire_type, bin, schema)}
    end
  end

  defp target(%{kind: {:oneof, oneof}}), do: oneof
  defp target(%{name: name}), do: name

  defp put_value(%{kind: :repeated, name: name}, acc, value),
    do: Map.update!(acc, name, &[value | &1])

  defp put_value(%{kind: :map}, acc, :unknown_entry), do: acc

  defp put_value(%{kind: :map, name: name}, acc, {key, value}),
    do: Map.update!(acc, name, &Map.put(&1, key, value))

  defp put_value(%{kind: {:oneof, oneof}, name: name}, acc, value),
    do: Map.put(acc, oneof, {name, value})

  defp put_value(%{name: name}, acc, value), do: Map.put(acc, name, value)

  defp read_packed(_type, <<>>, _field, _schema, acc), do: acc

  # Fast path for float lists (embeddings): one pass when every value is a
  # plain number; NaN and infinities fail the float match and take the slow
  # path. `acc` is in reverse order.
  defp read_packed(:float, chunk, field, schema, acc) when rem(byte_size(chunk), 4) == 0 do
    values = for <<x::little-float-32 <- chunk>>, do: x

    if length(values) * 4 == byte_size(chunk),
      do: :lists.reverse(values, acc),
      else: read_packed_each(:float, chunk, field, schema, acc)
  end

  defp read_packed(:double, chunk, field, schema, acc) when rem(byte_size(chunk), 8) == 0 do
    values = for <<x::little-float-64 <- chunk>>, do: x

    if length(values) * 8 == byte_size(chunk),
      do: :lists.reverse(values, acc),
      else: read_packed_each(:double, chunk, field, schema, acc)
  end

  defp read_packed(type, chunk, field, schema, acc),
    do: read_packed_each(type, chunk, field, schema, acc)

  defp read_packed_each(_type, <<>>, _field, _schema, acc), do: acc

  defp read_packed_each(type, chunk, field, schema, acc) do
    {value, rest} = read_value(type, chunk, field, schema, 0, nil)
    read_packed_each(type, rest, field, schema, [value | acc])
  end

  # `current` is the value already in the struct: sub-messages merge into it.
  defp read_value({:message, mod}, bin, field, schema, depth, current) do
    {chunk, rest} = read(Wire.decode_length_delimited(bin), field, schema)

    msg =
      case {field.kind, current} do
        {:optional, %^mod{}} ->
          merge_message(current, chunk, depth + 1)

        {{:oneof, _}, {name, %^mod{} = msg}} when name == field.name ->
          merge_message(msg, chunk, depth + 1)

        _ ->
          decode_message(mod, chunk, depth + 1)
      end

    {msg, rest}
  end

  defp read_value({:map, _key_type, value_type}, bin, field, schema, depth, _current) do
    {chunk, rest} = read(Wire.decode_length_delimited(bin), field, schema)

    case decode_fields(chunk, field.entry, %{key: nil, value: nil}, depth + 1) do
      %{unknown: true} ->
        {:unknown_entry, rest}

      %{key: key, value: value} ->
        key = if key == nil, do: map_default(field.entry.by_number[1].type), else: key
        value = if value == nil, do: map_default(value_type), else: value
        {{key, value}, rest}
    end
  end

  defp read_value(:string, bin, field, schema, _depth, _current) do
    {chunk, rest} = read(Wire.decode_length_delimited(bin), field, schema)

    if String.valid?(chunk),
      do: {chunk, rest},
      else: fail("#{schema.name}.#{field.name} (field #{field.number}): invalid UTF-8")
  end

  defp read_value(:bytes, bin, field, schema, _depth, _current),
    do: read(Wire.decode_length_delimited(bin), field, schema)

  defp read_value(type, bin, field, schema, _depth, _current) when type in @fixed32_types do
    {raw, rest} =
      if type == :float,
        do: read(Wire.decode_float(bin), field, schema),
        else: read(Wire.decode_fixed32(bin), field, schema)

    {if(type == :sfixed32, do: Wire.to_int32(raw), else: raw), rest}
  end

  defp read_value(type, bin, field, schema, _depth, _current) when type in @fixed64_types do
    {raw, rest} =
      if type == :double,
        do: read(Wire.decode_double(bin), field, schema),
        else: read(Wire.decode_fixed64(bin), field, schema)

    {if(type == :sfixed64, do: Wire.to_int64(raw), else: raw), rest}
  end

  defp read_value(type, bin, field, schema, _depth, _current) do
    {n, rest} = read(Wire.decode_varint(bin), field, schema)
    {from_varint(type, n), rest}
  end

  defp from_varint(:int32, n), do: Wire.to_int32(n)
  defp from_varint(:int64, n), do: Wire.to_int64(n)
  defp from_varint(:uint32, n), do: Wire.to_uint32(n)
  defp from_varint(:uint64, n), do: n
  defp from_varint(:sint32, n), do: Wire.zigzag_decode(Wire.to_uint32(n))
  defp from_varint(:sint64, n), do: Wire.zigzag_decode(n)
  defp from_varint(:bool, n), do: n != 0
  defp from_varint({:enum, mod}, n), do: mod.name(Wire.to_int32(n))

  defp map_default({:message, mod}), do: mod.__struct__()
  defp map_default({:enum, mod}), do: mod.name(0)
  defp map_default(type) when type in [:string, :bytes], do: ""
  defp map_default(:bool), do: false
  defp map_default(type) when type in [:float, :double], do: 0.0
  defp map_default(_integer), do: 0

  defp read({:ok, value, rest}, _field, _schema), do: {value, rest}

  defp read({:error, reason}, field, schema),
    do: fail("#{schema.name}.#{field.name} (field #{field.number}): #{reason}")

  defp fail(reason), do: throw({:proto_decode_error, reason})
end
