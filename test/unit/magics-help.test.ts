import { strict as assert } from 'node:assert';
import { magicHelp, magicList, parseMagic } from '../../kernel-ext/magics';

describe('magics: help', () => {
  it('%lsmagic lists every magic, and %name? shows its own options', () => {
    const list = magicList();
    // As the user writes it (after the first %), as %lsmagic lists it, its usage line, an option.
    const magics: [name: string, listed: string, usage: string, option: string][] = [
      ['cluster start', '%cluster start [-n N]', 'Usage: %cluster start [options]', '--launcher'],
      ['cluster stop', '%cluster stop', 'Usage: %cluster stop', ''],
      [
        'cluster connect',
        '%cluster connect [FILE]',
        'Usage: %cluster connect [options] [file]',
        '',
      ],
      ['cluster status', '%cluster status', 'Usage: %cluster status', ''],
      ['cluster scale', '%cluster scale N', 'Usage: %cluster scale [options] <n>', ''],
      ['px', '%px [options] CODE', 'Usage: %px [options] [code...]', '--signal-on-interrupt'],
      ['%px', '%%px [options]', 'Usage: %%px [options]', '--out'],
      ['%parallel', '%%px [options]', 'Usage: %%px [options]', '--local'],
      ['pxresult', '%pxresult', 'Usage: %pxresult', ''],
      ['pxconfig', '%pxconfig [options]', 'Usage: %pxconfig [options]', '--group-outputs'],
      ['autopx', '%autopx', 'Usage: %autopx', ''],
      ['lsmagic', '%lsmagic', 'Usage: %lsmagic', ''],
      ['help', '%help', 'Usage: %lsmagic', ''],
    ];
    for (const [name, listed, usage, option] of magics) {
      assert.ok(list.includes(listed), `%lsmagic lists ${listed}`);
      if (!name.includes(' ')) {
        assert.deepEqual(parseMagic(`${name}?`, ''), { magic: 'lsmagic', topic: name });
      }
      const help = magicHelp(name);
      assert.ok(help.includes(usage), `%${name}? shows "${usage}" in:\n${help}`);
      assert.ok(help.includes(option), `%${name}? shows ${option}`);
    }
    assert.match(magicHelp('%px'), /--data +show what the cell publishes with\s+publish\(data\)/);
    assert.deepEqual(parseMagic('cluster?', ''), { magic: 'lsmagic', topic: 'cluster' });
    assert.match(magicHelp('cluster'), /Usage: %cluster start[\s\S]*Usage: %cluster scale/);
  });
});
