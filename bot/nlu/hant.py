"""Traditional Chinese characters read as their simplified forms, for the intent features.

Shoppers in Hong Kong, Taiwan and abroad write 繁體 ("會員碼", "註冊", "訂閱"),
and many switch within a message. The training examples are simplified, so
the character n-grams of a traditional word share nothing with the same
word in simplified characters. A one-character-to-one-character table of
the common traditional characters (everyday, shopping and service words)
is enough for that; characters that are also ordinary simplified characters
with another meaning (乾, 著, 幹, and the like) are left out, as are
word-level conventions (滑鼠, 軟體), which the sentence encoder covers.
"""

from __future__ import annotations

_TRADITIONAL = (
    "會員碼積優領兌換註冊銷訂閱號幫謝個麼麽這還沒聯絡戶問題務買賣點級資帳賬關閉請給讓說話們嗎對幾錢張費過時間現歡來開為與樣東"
    "車門錯誤紅綠藍黃萬億傳專業價額減滿贈禮獎勵薦歷紀錄記詢詳細態處體驗證發貨單訊設選擇愛護膚妝飾裝襪褲機電腦網線購評應該離刪"
    "權舊舉報維訴賠償結臺掃類別種週總計數統轉屬經熱夠約鐘頁貼簡讀寫聽見觀視覺學習慣氣節慶則規條遲響願隨亂壞損質難煩惱討厭極棄"
    "囉頭鬧補齊實際準確認顧蘭區廣場鋪樓層郵遞運輸齡歲壽義產貴塊圓漢語裡裏兒隻雙雜誌紙筆書畫圖後於從剛纔衛鬆髮麵製複儘盡彆無並"
    "佈佔係倆兩內凍創劃勁勢勝勞協卻參嘗嚴團園圍壓夢夥奪婦嬰寶將尋導屆帶師幣庫廳強當復慮憂戲戰據擁擔擊敗斷暫曆構樂標歐殘殺決況"
    "測濟溫滅漲潔濕災煙爭爾狀獨獲環畢監盤眾礎穩競範糧終組絕綜緊練績續罰羅聞聲職腳興藝蟲術親訓許訪詞試誠課調談論諾講識議變豐貝"
    "負財責賀賓賞贊贏趕跡軟較輕載輛輪辦連進達遠適遺邊鄉醫釋鐵銀鍵鏡長閃闆隊陽陰險隱雖雞靈靜頂項順須預頻顏顯風飛飯飲館餘馬驚魚"
    "鮮鳥麥齒龍啟衝鬥鑽鑰儲雲壹貳陸鎖綁鬚臉顆鍋燈暈麗惡療藥舖飽餓檢驟闊寬簽繳錶鈕鍊撥擬擠攤斂韓頓頒錦鑑鑒獻瑩碩礙禱窮窩竊築籃"
    "籤紋納紛純紗紹絲綿緒編緩縮繩繪繼罷聳膽臟艱莊華萊葉蔥蘋蘿蝦蠶襯覽觸託診詐誇誰諮謎譯豬賦賴趙軸輔遙遷鄰醬針鈔鉛銅銳鋼錫鍛鎮"
    "鏈鑄閒閣闖隸霧韻頸頰顫颱飄餅餃饅駕騙騷驕髒鬍鴨鵝鹽黴動勸戀撿歸檔滯擾辭憑傘廁燒餵帥亞憶濾鹼匯滙櫃檯嗚啞喚嘆噁嚇囑夾奧媽孫"
    "寧尷崗嶺廢廠彈徹憤懇懶拋捨揚揮搖搶攜敘暢曉曬棧楊榮橋櫻殼滬滾漸潛瀏灣爐牽猶獅癢皺盜禍稅筍簾紐絨緣縫繞織繫聰脈膠艙蓋薑蘆訝"
    "謊譜貓貪貧販貫貸蹤軌農遊違鄭釘鈴鋁鍾閘陣陳鞏頌頗飼騎騰驅鬱魯鴿鶴"
)
_SIMPLIFIED = (
    "会员码积优领兑换注册销订阅号帮谢个么么这还没联络户问题务买卖点级资账账关闭请给让说话们吗对几钱张费过时间现欢来开为与样东"
    "车门错误红绿蓝黄万亿传专业价额减满赠礼奖励荐历纪录记询详细态处体验证发货单讯设选择爱护肤妆饰装袜裤机电脑网线购评应该离删"
    "权旧举报维诉赔偿结台扫类别种周总计数统转属经热够约钟页贴简读写听见观视觉学习惯气节庆则规条迟响愿随乱坏损质难烦恼讨厌极弃"
    "啰头闹补齐实际准确认顾兰区广场铺楼层邮递运输龄岁寿义产贵块圆汉语里里儿只双杂志纸笔书画图后于从刚才卫松发面制复尽尽别无并"
    "布占系俩两内冻创划劲势胜劳协却参尝严团园围压梦伙夺妇婴宝将寻导届带师币库厅强当复虑忧戏战据拥担击败断暂历构乐标欧残杀决况"
    "测济温灭涨洁湿灾烟争尔状独获环毕监盘众础稳竞范粮终组绝综紧练绩续罚罗闻声职脚兴艺虫术亲训许访词试诚课调谈论诺讲识议变丰贝"
    "负财责贺宾赏赞赢赶迹软较轻载辆轮办连进达远适遗边乡医释铁银键镜长闪板队阳阴险隐虽鸡灵静顶项顺须预频颜显风飞饭饮馆余马惊鱼"
    "鲜鸟麦齿龙启冲斗钻钥储云一二陆锁绑须脸颗锅灯晕丽恶疗药铺饱饿检骤阔宽签缴表钮链拨拟挤摊敛韩顿颁锦鉴鉴献莹硕碍祷穷窝窃筑篮"
    "签纹纳纷纯纱绍丝绵绪编缓缩绳绘继罢耸胆脏艰庄华莱叶葱苹萝虾蚕衬览触托诊诈夸谁咨谜译猪赋赖赵轴辅遥迁邻酱针钞铅铜锐钢锡锻镇"
    "链铸闲阁闯隶雾韵颈颊颤台飘饼饺馒驾骗骚骄脏胡鸭鹅盐霉动劝恋捡归档滞扰辞凭伞厕烧喂帅亚忆滤碱汇汇柜台呜哑唤叹恶吓嘱夹奥妈孙"
    "宁尴岗岭废厂弹彻愤恳懒抛舍扬挥摇抢携叙畅晓晒栈杨荣桥樱壳沪滚渐潜浏湾炉牵犹狮痒皱盗祸税笋帘纽绒缘缝绕织系聪脉胶舱盖姜芦讶"
    "谎谱猫贪贫贩贯贷踪轨农游违郑钉铃铝钟闸阵陈巩颂颇饲骑腾驱郁鲁鸽鹤"
)
_TABLE = str.maketrans(_TRADITIONAL, _SIMPLIFIED)


def simplified(text: str) -> str:
    """``text`` with each traditional character of the table in its simplified form."""
    return text.translate(_TABLE)
