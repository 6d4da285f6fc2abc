// The chat's own words, in both languages.
import { register } from '../i18n/index.js';

register({
  en: {
    'nav.account': 'Account',
    'chat.input.label': 'Message',
    'chat.input.placeholder': 'Ask anything (Enter sends, Shift+Enter adds a line)',
    'chat.send': 'Send',
    'chat.stop': 'Stop',
  },
  zh: {
    'nav.account': '账户',
    'chat.input.label': '消息',
    'chat.input.placeholder': '输入问题（Enter 发送，Shift+Enter 换行）',
    'chat.send': '发送',
    'chat.stop': '停止',
  },
});
