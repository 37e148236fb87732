# Thrudoc conformance driver for Ruby: runs a conformance script (JSON, see
# tests/interop/README.md) against a server, with bindings the Thrift compiler
# generated (`thrift --gen rb`) and Debian's ruby-thrift library.
#
#   ruby conformance.rb --gen DIR --host H --port P --script FILE
#
# Prints `ok|FAIL <transport>/<protocol> <check>[: why]` per check and pair,
# then `N passed, M failed`. Exit status: 0 all passed, 1 a check failed,
# 2 setup error.

require 'json'

begin
  require 'thrift'
rescue LoadError
  warn 'conformance.rb: the Ruby Thrift library is missing; install it with: ' \
       'apt-get install -y ruby-thrift'
  exit 2
end

UUID_RE = /\A\h{8}-\h{4}-\h{4}-\h{4}-\h{12}\z/
MAX_WALK_PAGES = 100_000
TIMEOUT_SECONDS = 30

# Per method: the kinds of its arguments, and the one success expectation it
# admits (besides an error). Scans are only expected to fail; walks cover them.
METHODS = {
  'getBuckets' => [[], 'contains'], 'admin' => [%i[str str], 'string'],
  'put' => [%i[str str value], 'void'], 'append' => [%i[str str value], 'void'],
  'get' => [%i[str str], 'value'], 'remove' => [%i[str str], 'void'],
  'putValue' => [%i[str value], 'new_key'], 'scan' => [%i[str str int], nil],
  'putList' => [%i[elements], 'results'], 'getList' => [%i[elements], 'results'],
  'removeList' => [%i[elements], 'results'], 'putValueList' => [%i[elements], 'results']
}.freeze

# The success form of one result of each batch method.
BATCH_RESULT = { 'putList' => 'ok', 'removeList' => 'ok',
                 'getList' => 'value', 'putValueList' => 'new_key' }.freeze

# An expectation of the script did not hold; the message says which.
class Failed < StandardError; end

def expect(condition, message)
  raise Failed, message unless condition
end

# inspect cut short, so that a 2 MiB value does not flood the report.
def short(value, limit = 60)
  text = value.inspect
  text.length <= limit ? text : "#{text[0, limit]}...(#{text.length} chars)"
end

def error?(want)
  want.is_a?(Hash) && want.key?('error')
end

# The form of a success expectation: "void", "ok", or the key of a one-key object.
def form_of(want)
  return want if want.is_a?(String)
  want.keys.first if want.is_a?(Hash) && want.size == 1
end

# Interprets a script's checks over connections to one server.
class Driver
  def initialize(script, host, port)
    @bucket = script['bucket']
    @new_idl = script['idl'] == 'new'
    @bytes_values = script['values'] == 'bytes'
    @host = host
    @port = port
  end

  # A fresh connection; the caller closes the transport.
  def connect(transport, protocol)
    socket = Thrift::Socket.new(@host, @port, TIMEOUT_SECONDS)
    trans = case transport
            when 'framed' then Thrift::FramedTransport.new(socket)
            when 'unframed' then Thrift::BufferedTransport.new(socket)
            else raise Failed, "unknown transport #{short(transport)}"
            end
    # The plain protocol classes (strict read and write are BinaryProtocol's
    # defaults), not BinaryProtocolAccelerated. Note that `require 'thrift'`
    # loads the thrift_native extension when it is there, which redefines
    # CompactProtocol's methods and Struct#read/#write in C; both ways pass.
    proto = case protocol
            when 'binary' then Thrift::BinaryProtocol.new(trans)
            when 'compact' then Thrift::CompactProtocol.new(trans)
            else raise Failed, "unknown protocol #{short(protocol)}"
            end
    trans.open
    [Thrudoc::Thrudoc::Client.new(proto), trans]
  end

  # A script value as the bytes to send. ruby-thrift writes a `string` field
  # through Bytes.convert_to_utf8_byte_buffer, which transcodes any string not
  # tagged UTF-8 (and raises on bytes >= 0x80 tagged binary). Tagging the raw
  # bytes UTF-8, valid or not, makes them go out unchanged.
  def value(spec)
    expect(spec.is_a?(Hash), "bad value #{short(spec)}")
    bytes = case spec.keys.sort
            when ['text'] then spec['text'] if spec['text'].is_a?(String)
            when ['hex']
              expect(@bytes_values, 'a hex value in a text script')
              spec['hex'][/\A(\h\h)*\z/] && [spec['hex']].pack('H*') if spec['hex'].is_a?(String)
            when %w[count fill]
              fill, count = spec.values_at('fill', 'count')
              fill * count if fill.is_a?(String) && fill.length == 1 &&
                              count.is_a?(Integer) && count >= 0
            end
    expect(bytes, "unknown value form #{short(spec)}")
    bytes.dup.force_encoding(Encoding::UTF_8)
  end

  # Values compare as bytes, whatever encoding the library tagged them with.
  def same?(got, want)
    got.is_a?(String) && got.b == want.b
  end

  # Fails unless the value got is the one wanted; a long value is shown cut
  # short, so the message says where the bytes part.
  def expect_value(got, want, what)
    return if same?(got, want)

    if got.is_a?(String)
      common = [got.bytesize, want.bytesize].min
      at = (0...common).find { |i| got.getbyte(i) != want.getbyte(i) } || common
      where = " (#{got.bytesize} bytes, expected #{want.bytesize}; they differ from byte #{at})"
    end
    raise Failed, "#{what} #{short(got)}, expected #{short(want)}#{where}"
  end

  def run_check(client, check)
    keys = {} # every key putValue/putValueList returned in this check
    check['steps'].each_with_index do |step, index|
      begin
        case step['op']
        when 'call' then call(client, step, keys)
        when 'walk' then walk(client, step)
        else raise Failed, "unknown op #{short(step['op'])}"
        end
      rescue Failed => e
        why = e.message
      rescue Thrudoc::ThrudocException => e
        why = "unexpected ThrudocException(type=#{e.type.inspect}, code=#{code_of(e).inspect}, " \
              "what=#{short(e.what)})"
      rescue StandardError => e # transport, protocol or application errors, or a malformed step
        why = "unexpected #{e.class}: #{e.message}"
      end
      raise Failed, "step #{index} (#{step['method'] || step['op'] if step.is_a?(Hash)}): #{why}" if why
    end
  end

  # `code` is only in the new IDL's bindings.
  def code_of(ex)
    ex.respond_to?(:code) ? ex.code : nil
  end

  def invoke(client, method, args)
    kinds, = METHODS[method]
    expect(kinds, "unknown method #{short(method)}")
    expect(args.is_a?(Array) && args.size == kinds.size,
           "#{method} takes #{kinds.size} arguments, the script gives #{short(args)}")
    values = kinds.zip(args).map do |kind, arg|
      case kind
      when :value then value(arg)
      when :elements then elements(arg)
      when :int then arg.tap { expect(arg.is_a?(Integer), "#{short(arg)} is not an integer") }
      else arg.tap { expect(arg.is_a?(String), "#{short(arg)} is not a string") }
      end
    end
    client.public_send(method, *values)
  end

  def elements(list)
    expect(list.is_a?(Array), "#{short(list)} is not a list of elements")
    list.map do |e|
      expect(e.is_a?(Hash) && e.keys.sort == %w[bucket key value], "bad element #{short(e)}")
      Thrudoc::Element.new(bucket: e['bucket'], key: e['key'], value: value(e['value']))
    end
  end

  def call(client, step, keys)
    method = step['method']
    want = step['expect']
    return call_failing(client, method, step['args'], want['error']) if error?(want)

    form = form_of(want)
    expect(METHODS.key?(method), "unknown method #{short(method)}")
    expect(form && form == METHODS[method][1], "unknown expectation #{short(want)} for #{method}")
    result = invoke(client, method, step['args'])
    case form
    when 'void'
      expect(result.nil?, "returned #{short(result)}, expected nothing")
    when 'contains'
      expect(result.is_a?(Array) && result.include?(want['contains']),
             "#{short(want['contains'])} is not in #{short(result, 200)}")
    when 'value'
      expect_value(result, value(want['value']), 'returned')
    when 'string'
      expect(want['string'].is_a?(String), "unknown expectation #{short(want)}")
      expect_value(result, want['string'], 'returned')
    when 'new_key'
      expect(want['new_key'] == true, "unknown expectation #{short(want)}")
      check_new_key(client, result, step['args'][0], value(step['args'][1]), keys)
    when 'results'
      check_results(client, method, step['args'][0], result, want['results'], keys)
    end
  end

  # A call that must throw ThrudocException; the connection must then go on serving.
  def call_failing(client, method, args, want)
    begin
      result = invoke(client, method, args)
    rescue Thrudoc::ThrudocException => e
      check_error(e, want, 'the exception')
      begin
        buckets = client.getBuckets
      rescue StandardError => e2
        raise Failed, "after the error, getBuckets() on the same connection failed: " \
                      "#{e2.class}: #{e2.message}"
      end
      expect(buckets.is_a?(Array) && buckets.include?(@bucket),
             "after the error, getBuckets() on the same connection returned #{short(buckets)}")
      return
    rescue Failed
      raise
    rescue StandardError => e
      raise Failed, "#{e.class}: #{e.message}, expected ThrudocException #{short(want)}"
    end
    raise Failed, "returned #{short(result)} instead of throwing #{short(want)}"
  end

  def check_error(ex, want, what)
    expect(want.is_a?(Hash) && (want.keys - %w[type code what]).empty? && want['what'].is_a?(String) &&
           (!@new_idl || want['code'].is_a?(Integer)), "bad error expectation #{short(want)}")
    expect(!ex.nil?, "#{what} is missing (null)")
    type = ex.type || 1 # an absent type reads as its default, UNKNOWN
    wanted_type = want.fetch('type', 1)
    expect(ex.what.is_a?(String) && !ex.what.empty?, "#{what} has an empty `what`")
    expect(type == wanted_type, "#{what} has type #{type.inspect}, expected #{wanted_type.inspect} " \
                                "(what=#{short(ex.what)})")
    expect(ex.what.b.include?(want['what'].b),
           "#{what}: `what` #{short(ex.what)} does not name #{short(want['what'])}")
    return unless @new_idl

    expect(code_of(ex) == want['code'], "#{what} has code #{code_of(ex).inspect}, expected " \
                                        "#{want['code'].inspect} (what=#{short(ex.what)})")
  end

  def check_success(ex, what)
    expect(!ex.nil?, "#{what} is missing (null); a success is an exception with an empty `what`")
    expect(ex.what == '', "#{what}: expected success, got what=#{short(ex.what)}")
    expect(!@new_idl || code_of(ex).nil?, "#{what}: a success with code #{code_of(ex).inspect}")
  end

  # A key putValue(List) returned: a UUID, new in this check, that reads back.
  def check_new_key(client, key, bucket, value, keys, what = 'the')
    expect(key.is_a?(String) && key.match?(UUID_RE), "#{what} key #{short(key)} is not a UUID")
    expect(!keys.key?(key.b), "#{what} key #{short(key)} was returned before")
    keys[key.b] = true
    expect_value(client.get(bucket, key), value, "get of #{what} key #{short(key)} returned")
  end

  def check_results(client, method, asked, results, wanted, keys)
    expect(wanted.is_a?(Array) && wanted.size == asked.size,
           "the script expects #{short(wanted)} of #{asked.size} elements")
    expect(results.is_a?(Array) && results.size == asked.size,
           "#{results.is_a?(Array) ? results.size : short(results)} results for #{asked.size} elements")
    results.zip(asked, wanted).each_with_index do |(result, element, want), i|
      what = "result #{i}"
      if BATCH_RESULT[method] == 'ok'
        ex = result
      else
        expect(!result.nil?, "#{what}: no ListResponse")
        ex = result.ex
        got = result.element
      end
      if error?(want)
        check_error(ex, want['error'], what)
        next
      end
      expect(form_of(want) == BATCH_RESULT[method],
             "#{what}: unknown expectation #{short(want)} for #{method}")
      check_success(ex, what)
      case BATCH_RESULT[method]
      when 'ok' then next
      when 'value'
        expect(!got.nil?, "#{what}: no element")
        expect(same?(got.key, element['key']), "#{what}: the element is for key #{short(got.key)}, " \
                                               "not #{short(element['key'])}")
        expect_value(got.value, value(want['value']), "#{what}: value")
      else # new_key
        expect(want['new_key'] == true, "#{what}: unknown expectation #{short(want)}")
        expect(!got.nil?, "#{what}: no element")
        check_new_key(client, got.key, element['bucket'], value(element['value']), keys, "#{what}:")
      end
    end
  end

  # Scans the bucket page by page; the keys under the prefix must be exactly those expected.
  def walk(client, step)
    expect(step.keys.sort == %w[bucket count expect op prefix], "bad walk #{short(step)}")
    bucket, count, prefix, want = step.values_at('bucket', 'count', 'prefix', 'expect')
    expect(count.is_a?(Integer) && want.is_a?(Hash) && prefix.is_a?(String), "bad walk #{short(step)}")
    wanted = want.to_h { |k, v| [k.b, value(v)] }
    seen = {}
    mine = {}
    seed = ''
    pages = 0
    loop do
      pages += 1
      expect(pages <= MAX_WALK_PAGES, "the walk did not end within #{MAX_WALK_PAGES} pages")
      response = client.scan(bucket, seed, count)
      expect(!response.nil?, "page #{pages}: no ScanResponse")
      elements = response.elements || []
      expect(elements.size <= count, "page #{pages} holds #{elements.size} elements, more than #{count}")
      elements.each do |e|
        expect(same?(e.bucket, bucket), "page #{pages}: element of bucket #{short(e.bucket)}")
        expect(!seen.key?(e.key.b), "page #{pages}: key #{short(e.key)} seen twice")
        seen[e.key.b] = true
        mine[e.key.b] = e.value if e.key.b.start_with?(prefix.b)
      end
      break if elements.size < count

      expect(!response.seed.to_s.empty?, "page #{pages} is full but its seed is empty")
      seed = response.seed
    end
    missed = wanted.keys - mine.keys
    extra = mine.keys - wanted.keys
    expect(missed.empty?, "#{missed.size} keys never seen, e.g. #{short(missed.first(3), 200)}")
    expect(extra.empty?, "#{extra.size} keys never written, e.g. #{short(extra.first(3), 200)}")
    wanted.each { |key, v| expect_value(mine[key], v, "key #{short(key)}: value") }
  end
end

def setup_error(message)
  warn "conformance.rb: #{message}"
  exit 2
end

def load_bindings(dir)
  # The service file (thrudoc.rb) requires its types file by name, from $LOAD_PATH.
  $LOAD_PATH.unshift(File.expand_path(dir))
  require File.join(File.expand_path(dir), 'thrudoc')
  Thrudoc::Thrudoc::Client && Thrudoc::Element && Thrudoc::ThrudocException
rescue LoadError, NameError => e
  setup_error("no Thrudoc bindings in #{dir} (#{e.message}); make them with: " \
              "thrift --gen rb -out #{dir} tests/interop/original.thrift")
end

# The outline a script must have to be run at all; what is inside steps is
# checked as they run, so that a bad step fails its check, not the driver.
def script_shaped?(script)
  script.is_a?(Hash) && script['bucket'].is_a?(String) && %w[original new].include?(script['idl']) &&
    %w[bytes text].include?(script['values']) && script['runs'].is_a?(Array) &&
    script['runs'].all? do |run|
      run.is_a?(Hash) && run['checks'].is_a?(Array) &&
        run['checks'].all? { |c| c.is_a?(Hash) && c['name'].is_a?(String) && c['steps'].is_a?(Array) }
    end
end

USAGE = 'usage: conformance.rb --gen DIR --host H --port P --script FILE'

def main
  opts = ARGV.size.even? ? ARGV.each_slice(2).to_h : {}
  unknown = opts.keys - %w[--gen --host --port --script]
  missing = %w[--gen --port --script] - opts.keys
  unless unknown.empty? && missing.empty? && opts['--port'].match?(/\A\d+\z/)
    setup_error("bad arguments #{ARGV.join(' ')}\n#{USAGE}")
  end
  load_bindings(opts['--gen'])
  begin
    script = JSON.parse(File.read(opts['--script'], encoding: 'UTF-8'))
  rescue SystemCallError, JSON::ParserError => e
    setup_error("cannot read the script: #{e.message}")
  end
  unless script_shaped?(script)
    setup_error("#{opts['--script']} is not a conformance script (bucket, idl, values, runs of checks)")
  end

  $stdout.sync = true
  driver = Driver.new(script, opts.fetch('--host', '127.0.0.1'), Integer(opts['--port']))
  passed = failed = 0
  script['runs'].each do |run|
    pair = "#{run['transport']}/#{run['protocol']}"
    run['checks'].each do |check|
      trans = nil
      begin
        client, trans = driver.connect(run['transport'], run['protocol'])
        driver.run_check(client, check)
        puts "ok #{pair} #{check['name']}"
        passed += 1
      rescue StandardError => e # Failed, or the connection itself failed
        puts "FAIL #{pair} #{check['name']}: #{e.message}"
        failed += 1
      ensure
        trans&.close rescue nil # it may be broken already
      end
    end
  end
  puts "#{passed} passed, #{failed} failed"
  exit(failed.zero? ? 0 : 1)
end

main if $PROGRAM_NAME == __FILE__
